//! Decoding hints: what a client knows about the text it sends (digits only, a character set,
//! a length, a letter case, one line), enforced inside CTC decoding (see [`super::ctc`]): a class
//! outside the allowed set is never picked, so the decoder takes the best class the model also
//! considered, and length bounds select the best path of an allowed length.

use super::ctc::Charset;

/// The hint names, as query parameters (`POST /api/ocr/solve?numeric=1`) and CLI flags.
pub const NAMES: [&str; 6] = [
    "numeric",
    "charset",
    "min_len",
    "max_len",
    "case",
    "single_line",
];

/// A letter case the text is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Capitals only.
    Upper,
    /// Small letters only.
    Lower,
}

impl std::str::FromStr for Case {
    type Err = HintError;

    fn from_str(s: &str) -> Result<Case, HintError> {
        match s {
            "upper" => Ok(Case::Upper),
            "lower" => Ok(Case::Lower),
            _ => Err(HintError::Value {
                name: "case",
                value: s.to_string(),
                expected: "upper or lower",
            }),
        }
    }
}

/// Hints as asked for, before they are checked against the model's dictionary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HintSpec {
    /// Digits 0–9 only.
    pub numeric: bool,
    /// Only these characters (a space in it allows spaces).
    pub charset: Option<String>,
    /// At least this many characters per line read (spaces count).
    pub min_len: Option<usize>,
    /// At most this many characters per line read.
    pub max_len: Option<usize>,
    /// Letters only in this case.
    pub case: Option<Case>,
    /// The image is one line of text: no detection.
    pub single_line: bool,
}

/// A hint that cannot be obeyed. The text is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HintError {
    #[error("unknown parameter {0:?} (decoding hints: numeric, charset, min_len, max_len, case, single_line)")]
    Unknown(String),
    #[error("{0} given more than once")]
    Repeated(&'static str),
    #[error("{name}={value:?}: expected {expected}")]
    Value {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("min_len {min} is greater than max_len {max}")]
    Bounds { min: usize, max: usize },
    #[error("charset is empty")]
    EmptyCharset,
    #[error("charset has characters the model cannot read: {0}")]
    CannotEmit(String),
    #[error("no character satisfies numeric, charset and case together")]
    NothingAllowed,
}

/// Lengths above this are no bound at all: a line of the widest strip has 400 CTC steps.
const MAX_LEN_VALUE: usize = 100_000;

impl HintSpec {
    /// Reads hints from decoded query pairs. `skip` names parameters that are not hints (the
    /// API key); any other unknown name is an error, so a misspelt hint is not silently ignored.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        skip: &[&str],
    ) -> Result<HintSpec, HintError> {
        let mut spec = HintSpec::default();
        let mut seen = Vec::new();
        for (name, value) in pairs {
            if skip.contains(&name) {
                continue;
            }
            let Some(&known) = NAMES.iter().find(|&&n| n == name) else {
                return Err(HintError::Unknown(name.to_string()));
            };
            if seen.contains(&known) {
                return Err(HintError::Repeated(known));
            }
            seen.push(known);
            match known {
                "numeric" => spec.numeric = flag(known, value)?,
                "single_line" => spec.single_line = flag(known, value)?,
                "charset" => spec.charset = Some(value.to_string()),
                "min_len" => spec.min_len = Some(length(known, value)?),
                "max_len" => spec.max_len = Some(length(known, value)?),
                _ => spec.case = Some(value.parse()?),
            }
        }
        spec.check()?;
        Ok(spec)
    }

    /// The checks that need no dictionary (also for CLI flags).
    pub fn check(&self) -> Result<(), HintError> {
        if let (Some(min), Some(max)) = (self.min_len, self.max_len) {
            if min > max {
                return Err(HintError::Bounds { min, max });
            }
        }
        if self.charset.as_deref() == Some("") {
            return Err(HintError::EmptyCharset);
        }
        Ok(())
    }

    /// No hint given.
    pub fn is_empty(&self) -> bool {
        *self == HintSpec::default()
    }
}

fn flag(name: &'static str, value: &str) -> Result<bool, HintError> {
    match value {
        "1" | "true" | "" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(HintError::Value {
            name,
            value: value.to_string(),
            expected: "1, 0, true or false",
        }),
    }
}

fn length(name: &'static str, value: &str) -> Result<usize, HintError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|&n| n <= MAX_LEN_VALUE)
        .ok_or_else(|| HintError::Value {
            name,
            value: value.to_string(),
            expected: "a whole number from 0 to 100000",
        })
}

/// Hints checked against the dictionary, ready for the decoder.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// Per class: may be picked (the blank always may); `None`: every class.
    pub(super) allowed: Option<Vec<bool>>,
    /// (from, to): a class that may not be picked whose probability counts for an allowed
    /// class, its other letter case (an `x` read on an upper-case captcha is evidence of `X`).
    pub(super) folds: Vec<(usize, usize)>,
    pub(super) min_len: Option<usize>,
    pub(super) max_len: Option<usize>,
    /// The image is one line: no detection.
    pub single_line: bool,
}

impl Hints {
    /// No hints: the decoder's own choices.
    pub fn none() -> Hints {
        Hints::default()
    }

    /// Checks `spec` against the dictionary: every charset character must be one the model
    /// can emit, and some class must remain.
    pub fn compile(spec: &HintSpec, charset: &Charset) -> Result<Hints, HintError> {
        spec.check()?;
        if let Some(chars) = &spec.charset {
            let missing: String =
                chars
                    .chars()
                    .filter(|&c| !charset.can_emit(c))
                    .fold(String::new(), |mut s, c| {
                        if !s.contains(c) {
                            s.push(c);
                        }
                        s
                    });
            if !missing.is_empty() {
                return Err(HintError::CannotEmit(missing));
            }
        }
        let restricted = spec.numeric || spec.charset.is_some() || spec.case.is_some();
        let allowed = if restricted {
            let ok = |c: char| {
                (!spec.numeric || c.is_ascii_digit())
                    && spec.charset.as_ref().is_none_or(|s| s.contains(c))
                    && match spec.case {
                        Some(Case::Upper) => !c.is_lowercase(),
                        Some(Case::Lower) => !c.is_uppercase(),
                        None => true,
                    }
            };
            let mask: Vec<bool> = (0..charset.len())
                .map(|i| i > 0 && charset.folded(i).chars().all(ok))
                .collect();
            if !mask.iter().any(|&a| a) {
                return Err(HintError::NothingAllowed);
            }
            Some(mask)
        } else {
            None
        };
        let folds = allowed
            .as_deref()
            .map(|mask| case_folds(mask, charset))
            .unwrap_or_default();
        Ok(Hints {
            allowed,
            folds,
            min_len: spec.min_len,
            max_len: spec.max_len,
            single_line: spec.single_line,
        })
    }

    /// Whether the decoder may pick class `c`.
    pub(super) fn allows(&self, c: usize) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|a| a.get(c).copied().unwrap_or(false))
    }

    /// True when no hint changes decoding.
    pub fn is_none(&self) -> bool {
        self.allowed.is_none() && self.min_len.is_none() && self.max_len.is_none()
    }

    /// Whether word spaces may be restored from gaps in the strip: not when spaces are not
    /// allowed, nor when a length was asked for (the length is that of what was decoded).
    pub(super) fn respace(&self, space: usize) -> bool {
        self.free_length() && self.allows(space)
    }

    /// Whether no length was asked for: characters may then be added from the ink.
    pub(super) fn free_length(&self) -> bool {
        self.min_len.is_none() && self.max_len.is_none()
    }
}

/// For each class that may not be picked and is one letter whose other case may be: (it,
/// that class).
fn case_folds(mask: &[bool], charset: &Charset) -> Vec<(usize, usize)> {
    let mut folds = Vec::new();
    for (from, &ok) in mask.iter().enumerate().skip(1) {
        if ok {
            continue;
        }
        let text = charset.folded(from);
        let mut chars = text.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            continue;
        };
        let other: String = if c.is_lowercase() {
            c.to_uppercase().collect()
        } else if c.is_uppercase() {
            c.to_lowercase().collect()
        } else {
            continue;
        };
        if let Some(to) = charset.class_of(&other).filter(|&to| mask[to]) {
            folds.push((from, to));
        }
    }
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<HintSpec, HintError> {
        HintSpec::from_pairs(q.iter().copied(), &["api"])
    }

    #[test]
    fn query_pairs_become_hints_and_bad_ones_say_why() {
        let spec = parse(&[
            ("api", "k"),
            ("numeric", "1"),
            ("min_len", "6"),
            ("max_len", "6"),
        ])
        .unwrap();
        assert!(spec.numeric && spec.min_len == Some(6) && spec.max_len == Some(6));
        assert_eq!(parse(&[("api", "k")]).unwrap(), HintSpec::default());
        assert_eq!(
            parse(&[("numric", "1")]),
            Err(HintError::Unknown("numric".into()))
        );
        assert_eq!(
            parse(&[("min_len", "7"), ("max_len", "6")]),
            Err(HintError::Bounds { min: 7, max: 6 })
        );
        assert_eq!(parse(&[("charset", "")]), Err(HintError::EmptyCharset));
        assert!(matches!(
            parse(&[("case", "title")]),
            Err(HintError::Value { name: "case", .. })
        ));
        assert!(matches!(
            parse(&[("min_len", "-1")]),
            Err(HintError::Value { .. })
        ));
        assert!(matches!(
            parse(&[("numeric", "yes")]),
            Err(HintError::Value { .. })
        ));
        assert_eq!(
            parse(&[("numeric", "1"), ("numeric", "0")]),
            Err(HintError::Repeated("numeric"))
        );
    }

    #[test]
    fn compiled_against_the_dictionary() {
        let cs = Charset::new("0\n1\nO\no\nX\nx\n一\n");
        let spec = |f: &dyn Fn(&mut HintSpec)| {
            let mut s = HintSpec::default();
            f(&mut s);
            Hints::compile(&s, &cs)
        };
        // Classes: blank, 0, 1, O, o, X, x, 一, space.
        let h = spec(&|s| s.numeric = true).unwrap();
        assert_eq!(
            h.allowed.as_deref().unwrap(),
            &[false, true, true, false, false, false, false, false, false]
        );
        let h = spec(&|s| s.case = Some(Case::Upper)).unwrap();
        assert_eq!(h.folds, vec![(4, 3), (6, 5)]);
        assert!(!h.respace(8) || h.allowed.as_ref().unwrap()[8]);
        assert_eq!(
            spec(&|s| s.charset = Some("0Ä".into())).unwrap_err(),
            HintError::CannotEmit("Ä".into())
        );
        assert_eq!(
            spec(&|s| {
                s.numeric = true;
                s.charset = Some("OX".into());
            })
            .unwrap_err(),
            HintError::NothingAllowed
        );
        assert!(spec(&|_| {}).unwrap().is_none());
    }
}
