//! Scanned PDFs: every page must draw exactly one image (what scanners and scan-to-PDF tools
//! write) and no visible text or vector drawing. The image's own pixels are read, in the
//! orientation the page shows them (`/Rotate`, and a turn or flip in the content's `cm`):
//! JPEG (`DCTDecode`), 1-bit CCITT G4 (`CCITTFaxDecode`, K < 0) and raw samples behind
//! `FlateDecode` (PNG/TIFF predictors), `LZWDecode`, `RunLengthDecode` or the ASCII filters.
//! An invisible OCR text layer over a scan (text render mode 3, "searchable PDF") is allowed.
//!
//! [`Pdf::open`] checks everything a page needs without decoding a pixel: the page tree (walked
//! without recursion, cycles refused, counting stopped past `max_pages`), each page's content,
//! its image's filters, colour space and size against [`Limits`]. So a born-digital page, an
//! unsupported image or a 100 000 × 100 000 one is refused before the upload is queued or
//! charged. [`Pdf::page`] then decodes one page's image, within the limits.
//!
//! Parsing is `lopdf` (pure Rust), which bounds its own nesting (100), reference chains and the
//! size of the object streams it inflates while loading; nesting is also checked here first.

use std::borrow::Cow;
use std::collections::HashSet;

use image::{DynamicImage, RgbImage};
use lopdf::{Dictionary, Object, ObjectId, Stream};

use super::ccitt;
use crate::ocr::decode::{check_size, decode_jpeg, flatten, shrink, DecodeError, Limits};

/// `[` and `<<` nested deeper than this outside streams are refused before parsing.
const MAX_NESTING: usize = 256;
/// Object and cross-reference streams lopdf inflates while loading, all together: its own limit
/// is per stream, and a 20 MB upload holds thousands of 1000:1 Flate bombs. A scan's are a few
/// kilobytes; past this the file is refused as unreadable.
const MAX_OBJECT_STREAMS: usize = 32 << 20;
const MAX_OBJECT_STREAM: usize = 8 << 20;
/// Content read per document (pages and forms, inflated) and operators run: a scanned page's
/// content is a few dozen bytes ("q W 0 0 H 0 0 cm /Im0 Do Q", perhaps an invisible text
/// layer), so past these the pages are text or drawings.
const MAX_CONTENT: usize = 16 << 20;
const MAX_OPERATORS: usize = 2_000_000;
/// Form XObjects entered per page.
const MAX_FORMS: usize = 64;
const MAX_FORM_DEPTH: usize = 8;
/// Filters before the image's own (`[/ASCII85Decode /DCTDecode]`): the data they give is still
/// compressed, so it is not much larger than the file.
const MAX_PREFILTERED: usize = 64 << 20;

/// A loaded PDF and, for each page in order, where its image is and how to read it.
pub(super) struct Pdf {
    doc: lopdf::Document,
    pages: Vec<PageImage>,
}

struct PageImage {
    /// The image XObject (a stream).
    id: ObjectId,
    plan: Plan,
    turn: Turn,
}

/// How an image's samples are stored, checked at open.
struct Plan {
    width: u32,
    height: u32,
    codec: Codec,
    colour: Colour,
    bits: u8,
    /// `/Decode [1 0]` (or `[hival 0]` for an indexed image): samples mean their opposite.
    invert: bool,
}

enum Codec {
    /// `DCTDecode`, after `pre` general filters.
    Jpeg { pre: usize },
    /// `CCITTFaxDecode` with K < 0, after `pre` general filters.
    G4 {
        pre: usize,
        black_is_1: bool,
        byte_align: bool,
        /// `/Rows`: rows the data codes (the image's height when absent).
        rows: u32,
    },
    /// Samples behind general filters only (or none), decoded by lopdf with its predictors.
    Raw,
}

enum Colour {
    Gray,
    Rgb,
    Cmyk,
    /// A palette of `base` colours (`n` components each), as RGB triples.
    Indexed(Vec<[u8; 3]>),
    /// `/ImageMask`: 0 paints (black), 1 leaves the page (white).
    Mask,
}

impl Colour {
    fn components(&self) -> usize {
        match self {
            Colour::Rgb => 3,
            Colour::Cmyk => 4,
            Colour::Gray | Colour::Indexed(_) | Colour::Mask => 1,
        }
    }
}

fn pdf_err(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Pdf(e.to_string())
}

impl Pdf {
    /// Loads the file, walks the page tree and checks every page (no pixel decoded).
    pub(super) fn open(bytes: &[u8], limits: &Limits) -> Result<Pdf, DecodeError> {
        let streams = check_nesting(bytes)?;
        let per_stream = (MAX_OBJECT_STREAMS / streams.max(1))
            .clamp(64 << 10, MAX_OBJECT_STREAM)
            .min(limits.max_alloc as usize);
        let options = lopdf::LoadOptions {
            max_decompressed_size: Some(per_stream),
            ..lopdf::LoadOptions::default()
        };
        // lopdf is fuzzed upstream but not by us: a panic in it is one broken upload, not a
        // crashed worker.
        let loaded =
            std::panic::catch_unwind(|| lopdf::Document::load_mem_with_options(bytes, options))
                .map_err(|_| pdf_err("the file could not be parsed"))?;
        let doc = match loaded {
            Ok(doc) => doc,
            Err(
                lopdf::Error::Decryption(_)
                | lopdf::Error::InvalidPassword
                | lopdf::Error::UnsupportedSecurityHandler(_),
            ) => return Err(DecodeError::Encrypted),
            Err(_) if find(bytes, b"/Encrypt").is_some() => return Err(DecodeError::Encrypted),
            Err(e) => return Err(pdf_err(describe(&e))),
        };
        // lopdf opens a file whose user password is empty (only an owner password restricts
        // printing or copying, which every reader ignores) and keeps /Encrypt otherwise.
        if doc.trailer.has(b"Encrypt") {
            return Err(DecodeError::Encrypted);
        }
        let leaves = page_leaves(&doc, limits.max_pages)?;
        let mut pages = Vec::with_capacity(leaves.len());
        let mut budget = Budget {
            content: MAX_CONTENT,
            operators: MAX_OPERATORS,
        };
        for (i, leaf) in leaves.iter().enumerate() {
            pages.push(check_page(&doc, leaf, i + 1, limits, &mut budget)?);
        }
        Ok(Pdf { doc, pages })
    }

    pub(super) fn pages(&self) -> usize {
        self.pages.len()
    }

    /// Decodes page `i` (0-based): its image as RGB shrunk to the working size and turned as the
    /// page shows it, and its size in image pixels after that turn.
    pub(super) fn page(
        &self,
        i: usize,
        limits: &Limits,
    ) -> Result<(RgbImage, (u32, u32)), DecodeError> {
        let page = self
            .pages
            .get(i)
            .ok_or_else(|| pdf_err(format!("it has no page {}", i + 1)))?;
        let n = i + 1;
        let stream = image_stream(&self.doc, page.id, n)?;
        let img = decode_image(stream, &page.plan, n, limits)?;
        let (w, h) = img.dimensions();
        let img = page.turn.apply(shrink(img, limits.work_side));
        Ok((img, page.turn.size(w, h)))
    }
}

/// lopdf's error, in words a client can read.
/// The image XObject `id` of page `n`, or why it cannot be read.
fn image_stream(doc: &lopdf::Document, id: ObjectId, n: usize) -> Result<&Stream, DecodeError> {
    doc.get_object(id).and_then(Object::as_stream).map_err(|e| {
        pdf_err(format!(
            "page {n}: its image is unreadable: {}",
            describe(&e)
        ))
    })
}

fn describe(e: &lopdf::Error) -> String {
    match e {
        lopdf::Error::Parse(_) | lopdf::Error::Xref(_) | lopdf::Error::InvalidOffset(_) => {
            format!("its structure is damaged ({e})")
        }
        lopdf::Error::Decompress(inner) => {
            format!("a compressed part is damaged or too large ({inner})")
        }
        _ => e.to_string(),
    }
}

/// Refuses `[` and `<<` nested deeper than [`MAX_NESTING`] before any parser recurses on them,
/// skipping comments, strings and stream data (where they mean nothing). Returns the number of
/// streams (the `stream` keyword cannot be disguised, unlike a name such as `/ObjStm`).
fn check_nesting(bytes: &[u8]) -> Result<usize, DecodeError> {
    let mut depth = 0usize;
    let mut streams = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => depth += 1,
            b'<' if bytes.get(i + 1) == Some(&b'<') => {
                depth += 1;
                i += 1;
            }
            b']' => depth = depth.saturating_sub(1),
            b'>' if bytes.get(i + 1) == Some(&b'>') => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'%' => {
                while i < bytes.len() && !matches!(bytes[i], b'\r' | b'\n') {
                    i += 1;
                }
            }
            b'(' => i = skip_string(bytes, i),
            b's' if bytes[i..].starts_with(b"stream") && !bytes[..i].ends_with(b"end") => {
                streams += 1;
                match find(&bytes[i..], b"endstream") {
                    Some(end) => i += end + b"endstream".len(),
                    None => break,
                }
                depth = 0;
                continue;
            }
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(pdf_err(format!(
                "arrays or dictionaries nested deeper than {MAX_NESTING}"
            )));
        }
        i += 1;
    }
    Ok(streams)
}

/// The index of the `)` closing the literal string opening at `open` (or the end).
fn skip_string(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A page of the tree with what it inherits from its ancestors.
struct Leaf<'a> {
    dict: &'a Dictionary,
    resources: Option<&'a Dictionary>,
    rotate: i64,
}

/// `dict[key]`, following references.
fn get<'a>(doc: &'a lopdf::Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    let obj = dict.get(key).ok()?;
    doc.dereference(obj).ok().map(|(_, o)| o)
}

fn get_dict<'a>(doc: &'a lopdf::Document, d: &'a Dictionary, key: &[u8]) -> Option<&'a Dictionary> {
    get(doc, d, key).and_then(|o| o.as_dict().ok())
}

fn get_int(doc: &lopdf::Document, d: &Dictionary, key: &[u8]) -> Option<i64> {
    match get(doc, d, key)? {
        Object::Integer(i) => Some(*i),
        Object::Real(r) if r.fract() == 0.0 => Some(*r as i64),
        _ => None,
    }
}

fn get_bool(doc: &lopdf::Document, d: &Dictionary, key: &[u8]) -> Option<bool> {
    get(doc, d, key).and_then(|o| o.as_bool().ok())
}

fn get_name<'a>(doc: &'a lopdf::Document, d: &'a Dictionary, key: &[u8]) -> Option<&'a [u8]> {
    get(doc, d, key).and_then(|o| o.as_name().ok())
}

fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

/// The pages in order, each with its inherited `/Resources` and `/Rotate`. The tree is walked
/// with an explicit stack (no recursion), a node seen twice is refused (a cycle would loop), and
/// the walk stops one page past `max_pages`: a tree claiming 10^9 pages costs 51 steps.
fn page_leaves(doc: &lopdf::Document, max_pages: usize) -> Result<Vec<Leaf<'_>>, DecodeError> {
    let catalog = doc
        .catalog()
        .map_err(|_| pdf_err("it has no document catalog"))?;
    let root = catalog
        .get(b"Pages")
        .map_err(|_| pdf_err("it has no page tree"))?;
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut leaves = Vec::new();
    // Kids are pushed in reverse, so pages pop in order.
    let mut stack: Vec<(&Object, Option<&Dictionary>, Option<i64>)> = vec![(root, None, None)];
    while let Some((node, resources, rotate)) = stack.pop() {
        if leaves.len() > max_pages {
            return Err(DecodeError::TooManyPages {
                pages: leaves.len(),
                limit: max_pages,
                at_least: true,
            });
        }
        let (id, node) = doc
            .dereference(node)
            .map_err(|e| pdf_err(format!("its page tree is damaged ({e})")))?;
        if let Some(id) = id {
            if !seen.insert(id) {
                return Err(pdf_err(
                    "its page tree loops back on itself or lists one page twice",
                ));
            }
        }
        let Ok(dict) = node.as_dict() else {
            return Err(pdf_err("its page tree holds something that is not a page"));
        };
        let resources = get_dict(doc, dict, b"Resources").or(resources);
        let rotate = get_int(doc, dict, b"Rotate").or(rotate);
        let kids = get(doc, dict, b"Kids").and_then(|k| k.as_array().ok());
        match (dict.get_type().ok(), kids) {
            (Some(b"Pages"), Some(kids)) | (None, Some(kids)) => {
                for kid in kids.iter().rev() {
                    stack.push((kid, resources, rotate));
                }
            }
            (Some(b"Pages"), None) => {
                return Err(pdf_err("its page tree has a node without pages"));
            }
            _ => leaves.push(Leaf {
                dict,
                resources,
                rotate: rotate.unwrap_or(0),
            }),
        }
    }
    if leaves.len() > max_pages {
        return Err(DecodeError::TooManyPages {
            pages: leaves.len(),
            limit: max_pages,
            at_least: false,
        });
    }
    if leaves.is_empty() {
        return Err(pdf_err("it has no pages"));
    }
    Ok(leaves)
}

/// An affine matrix `[a b c d e f]` (PDF's row-vector convention).
type Matrix = [f64; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

/// `m × n`: the CTM after `m cm` is `mul(m, ctm)`; a form drawn with `ctm` uses
/// `mul(matrix, ctm)`.
fn mul(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

/// What is left to spend on reading the document's content.
struct Budget {
    content: usize,
    operators: usize,
}

/// Checks page `n`'s content: one image, drawn once, and no visible text or painted path.
fn check_page(
    doc: &lopdf::Document,
    leaf: &Leaf,
    n: usize,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<PageImage, DecodeError> {
    let content = page_content(doc, leaf.dict, n, &mut budget.content)?;
    let mut scan = Scan {
        doc,
        page: n,
        image: None,
        forms: 0,
        budget,
    };
    scan.run(&content, leaf.resources, IDENTITY, 0, 0)?;
    let Some((id, ctm)) = scan.image else {
        return Err(DecodeError::NotScanned {
            page: n,
            why: "has no image, so nothing scanned to read".into(),
        });
    };
    let stream = image_stream(doc, id, n)?;
    let plan = plan(doc, &stream.dict, leaf.resources, n, limits)?;
    Ok(PageImage {
        id,
        plan,
        turn: Turn::of(&ctm, leaf.rotate),
    })
}

/// The page's content streams, decoded and joined.
fn page_content(
    doc: &lopdf::Document,
    page: &Dictionary,
    n: usize,
    budget: &mut usize,
) -> Result<Vec<u8>, DecodeError> {
    let streams: Vec<&Object> = match get(doc, page, b"Contents") {
        None => Vec::new(),
        Some(Object::Array(parts)) => parts.iter().collect(),
        Some(one) => vec![one],
    };
    let mut content = Vec::new();
    for part in streams {
        let stream = doc
            .dereference(part)
            .ok()
            .and_then(|(_, o)| o.as_stream().ok())
            .ok_or_else(|| pdf_err(format!("page {n}: its content is damaged")))?;
        content.extend(read_content(stream, n, budget)?);
        content.push(b'\n');
    }
    Ok(content)
}

/// A content stream, inflated within what is left of `budget`.
fn read_content(stream: &Stream, n: usize, budget: &mut usize) -> Result<Vec<u8>, DecodeError> {
    let content = stream
        .decompressed_content_with_limit(*budget)
        .map_err(|e| match e {
            lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. }) => {
                DecodeError::NotScanned {
                    page: n,
                    why: "has text or drawings, not a scanned image (its content is too long \
                          for one image)"
                        .into(),
                }
            }
            e => pdf_err(format!(
                "page {n}: its content is damaged ({})",
                describe(&e)
            )),
        })?;
    *budget -= content.len().min(*budget);
    Ok(content)
}

/// Walks content streams, keeping the transformation matrix and text render mode through
/// `q`/`Q`, and finds the one image they draw.
struct Scan<'a, 'b> {
    doc: &'a lopdf::Document,
    page: usize,
    image: Option<(ObjectId, Matrix)>,
    forms: usize,
    budget: &'b mut Budget,
}

enum Token<'a> {
    Number(f64),
    Name(&'a [u8]),
    Operator(&'a [u8]),
    /// Strings, arrays and dictionaries: operands this check never needs.
    Other,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// The next token of a content stream at `*pos`, or `None` at its end.
fn next_token<'a>(data: &'a [u8], pos: &mut usize) -> Option<Token<'a>> {
    loop {
        while *pos < data.len() && is_space(data[*pos]) {
            *pos += 1;
        }
        if *pos >= data.len() {
            return None;
        }
        if data[*pos] == b'%' {
            while *pos < data.len() && !matches!(data[*pos], b'\r' | b'\n') {
                *pos += 1;
            }
            continue;
        }
        break;
    }
    let start = *pos;
    let word_end = |from: usize| {
        let mut i = from;
        while i < data.len() && !is_space(data[i]) && !is_delimiter(data[i]) {
            i += 1;
        }
        i
    };
    match data[start] {
        b'/' => {
            *pos = word_end(start + 1);
            Some(Token::Name(&data[start + 1..*pos]))
        }
        b'(' => {
            *pos = skip_string(data, start) + 1;
            Some(Token::Other)
        }
        b'<' if data.get(start + 1) == Some(&b'<') => {
            *pos = start + 2;
            Some(Token::Other)
        }
        b'>' if data.get(start + 1) == Some(&b'>') => {
            *pos = start + 2;
            Some(Token::Other)
        }
        b'<' => {
            *pos = data[start..]
                .iter()
                .position(|&b| b == b'>')
                .map_or(data.len(), |e| start + e + 1);
            Some(Token::Other)
        }
        b'[' | b']' | b'{' | b'}' | b')' | b'>' => {
            *pos = start + 1;
            Some(Token::Other)
        }
        _ => {
            *pos = word_end(start).max(start + 1);
            let word = &data[start..*pos];
            if word[0].is_ascii_digit() || matches!(word[0], b'+' | b'-' | b'.') {
                let n = std::str::from_utf8(word).ok().and_then(|s| s.parse().ok());
                Some(n.map_or(Token::Other, Token::Number))
            } else {
                Some(Token::Operator(word))
            }
        }
    }
}

impl Scan<'_, '_> {
    fn not_scanned(&self, why: &str) -> DecodeError {
        DecodeError::NotScanned {
            page: self.page,
            why: why.into(),
        }
    }

    fn text_or_drawing(&self) -> DecodeError {
        self.not_scanned("has text or drawings, not a scanned image")
    }

    /// Reads one content stream (the page's, or a form's at `depth`) drawn with `ctm`.
    fn run(
        &mut self,
        data: &[u8],
        resources: Option<&Dictionary>,
        ctm: Matrix,
        render_mode: i64,
        depth: usize,
    ) -> Result<(), DecodeError> {
        // Render mode 3 is invisible text (an OCR layer); 7 only clips. Others show text.
        let mut state = (ctm, render_mode);
        let mut saved: Vec<(Matrix, i64)> = Vec::new();
        let mut operands: Vec<Token> = Vec::new();
        let mut pos = 0;
        while let Some(token) = next_token(data, &mut pos) {
            let op = match token {
                Token::Operator(op) => op,
                operand => {
                    // Only the last few operands of an operator are ever used.
                    if operands.len() == 8 {
                        operands.remove(0);
                    }
                    operands.push(operand);
                    continue;
                }
            };
            if self.budget.operators == 0 {
                return Err(self.text_or_drawing());
            }
            self.budget.operators -= 1;
            let nums: Vec<f64> = operands
                .iter()
                .filter_map(|t| match t {
                    Token::Number(v) => Some(*v),
                    _ => None,
                })
                .collect();
            match op {
                b"q" if saved.len() < 4096 => saved.push(state),
                b"Q" => state = saved.pop().unwrap_or(state),
                b"cm" if nums.len() >= 6 => {
                    let m: Matrix = nums[nums.len() - 6..].try_into().expect("six numbers");
                    state.0 = mul(&m, &state.0);
                }
                b"Tr" => state.1 = nums.last().map_or(0, |&v| v as i64),
                b"Tj" | b"TJ" | b"'" | b"\"" if !matches!(state.1, 3 | 7) => {
                    return Err(self.text_or_drawing())
                }
                b"S" | b"s" | b"f" | b"F" | b"f*" | b"B" | b"B*" | b"b" | b"b*" | b"sh" => {
                    return Err(self.text_or_drawing())
                }
                b"BI" => {
                    return Err(pdf_err(format!(
                        "page {}: it draws an inline image, which ocrbox does not read",
                        self.page
                    )))
                }
                b"Do" => {
                    if let Some(Token::Name(name)) = operands.last() {
                        let name = name.to_vec();
                        self.draw(&name, resources, state, depth)?;
                    }
                }
                _ => {}
            }
            operands.clear();
        }
        Ok(())
    }

    /// `/name Do`: an image is the page's scan; a form is read as content of its own.
    fn draw(
        &mut self,
        name: &[u8],
        resources: Option<&Dictionary>,
        (ctm, render_mode): (Matrix, i64),
        depth: usize,
    ) -> Result<(), DecodeError> {
        let doc = self.doc;
        let n = self.page;
        let missing = || pdf_err(format!("page {n}: it draws an object that is missing"));
        let xobjects = resources
            .and_then(|r| get_dict(doc, r, b"XObject"))
            .ok_or_else(missing)?;
        let (id, obj) = xobjects
            .get(name)
            .ok()
            .and_then(|o| doc.dereference(o).ok())
            .ok_or_else(missing)?;
        let stream = obj.as_stream().map_err(|_| missing())?;
        match get_name(doc, &stream.dict, b"Subtype") {
            Some(b"Image") => {
                let id = id.ok_or_else(missing)?;
                if self.image.is_some() {
                    return Err(self.not_scanned("has more than one image, not one scanned image"));
                }
                self.image = Some((id, ctm));
                Ok(())
            }
            Some(b"Form") => {
                self.forms += 1;
                if self.forms > MAX_FORMS || depth >= MAX_FORM_DEPTH {
                    return Err(self.text_or_drawing());
                }
                let matrix: Matrix = get(doc, &stream.dict, b"Matrix")
                    .and_then(|m| m.as_array().ok())
                    .and_then(|a| a.iter().map(number).collect::<Option<Vec<f64>>>())
                    .and_then(|v| v.try_into().ok())
                    .unwrap_or(IDENTITY);
                let content = read_content(stream, n, &mut self.budget.content)?;
                let inner = get_dict(doc, &stream.dict, b"Resources").or(resources);
                self.run(&content, inner, mul(&matrix, &ctm), render_mode, depth + 1)
            }
            _ => Ok(()),
        }
    }
}

/// What the image dictionary says about the samples, refused here if ocrbox cannot read it.
fn plan(
    doc: &lopdf::Document,
    dict: &Dictionary,
    resources: Option<&Dictionary>,
    n: usize,
    limits: &Limits,
) -> Result<Plan, DecodeError> {
    let bad = |what: String| pdf_err(format!("page {n}: its image {what}"));
    let side = |key: &[u8]| -> Result<u32, DecodeError> {
        let v = get_int(doc, dict, key).ok_or_else(|| bad("has no size".into()))?;
        Ok(v.clamp(0, i64::from(u32::MAX)) as u32)
    };
    let (width, height) = (side(b"Width")?, side(b"Height")?);
    check_size(width, height, limits)?;

    let filters: Vec<&[u8]> = match get(doc, dict, b"Filter") {
        None => Vec::new(),
        Some(Object::Array(a)) => a
            .iter()
            .map(|f| doc.dereference(f).ok().and_then(|(_, o)| o.as_name().ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("has a damaged /Filter".into()))?,
        Some(Object::Name(name)) => vec![name.as_slice()],
        Some(_) => return Err(bad("has a damaged /Filter".into())),
    };
    let general = |f: &[u8]| {
        matches!(
            f,
            b"FlateDecode"
                | b"LZWDecode"
                | b"RunLengthDecode"
                | b"ASCII85Decode"
                | b"ASCIIHexDecode"
        )
    };
    let pre = filters.len().saturating_sub(1);
    if let Some(f) = filters[..pre].iter().find(|f| !general(f)) {
        return Err(bad(format!("uses /{} before another filter", lossy(f))));
    }
    let last_parms = decode_parms(doc, dict, filters.len().saturating_sub(1));
    let mask = get_bool(doc, dict, b"ImageMask").unwrap_or(false);
    let codec = match filters.last().copied() {
        None => Codec::Raw,
        Some(f) if general(f) => Codec::Raw,
        Some(b"DCTDecode") => Codec::Jpeg { pre },
        Some(b"CCITTFaxDecode") => {
            let p = last_parms;
            let int = |k: &[u8], d: i64| p.and_then(|p| get_int(doc, p, k)).unwrap_or(d);
            let flag = |k: &[u8]| p.and_then(|p| get_bool(doc, p, k)).unwrap_or(false);
            if int(b"K", 0) >= 0 {
                return Err(bad(
                    "is CCITT Group 3 (K ≥ 0); ocrbox reads CCITT Group 4 (K < 0)".into(),
                ));
            }
            let columns = int(b"Columns", i64::from(width));
            if columns != i64::from(width) {
                return Err(bad(format!(
                    "is {width} pixels wide but its CCITT data {columns}"
                )));
            }
            let rows = match int(b"Rows", 0) {
                r if r > 0 => (r.min(i64::from(height))) as u32,
                _ => height,
            };
            Codec::G4 {
                pre,
                black_is_1: flag(b"BlackIs1"),
                byte_align: flag(b"EncodedByteAlign"),
                rows,
            }
        }
        Some(f @ (b"JBIG2Decode" | b"JPXDecode")) => {
            let what = if f == b"JPXDecode" {
                "JPEG 2000"
            } else {
                "JBIG2"
            };
            return Err(bad(format!(
                "is {what}, which ocrbox does not read yet (it reads JPEG, CCITT G4 and \
                 Flate-compressed scans)"
            )));
        }
        Some(f) => return Err(bad(format!("uses the unknown filter /{}", lossy(f)))),
    };

    let colour = if mask {
        Colour::Mask
    } else if matches!(codec, Codec::G4 { .. }) {
        Colour::Gray
    } else {
        let space =
            get(doc, dict, b"ColorSpace").ok_or_else(|| bad("has no colour space".into()))?;
        colour_space(doc, space, resources, 0).map_err(bad)?
    };
    let bits = if mask || matches!(codec, Codec::G4 { .. }) {
        1
    } else {
        match get_int(doc, dict, b"BitsPerComponent") {
            Some(b @ (1 | 2 | 4 | 8 | 16)) => b as u8,
            Some(b) => return Err(bad(format!("has {b} bits per sample"))),
            // A JPEG states its own depth.
            None if matches!(codec, Codec::Jpeg { .. }) => 8,
            None => return Err(bad("has no /BitsPerComponent".into())),
        }
    };
    let decode: Vec<f64> = get(doc, dict, b"Decode")
        .and_then(|d| d.as_array().ok())
        .map(|a| a.iter().filter_map(number).collect())
        .unwrap_or_default();
    let invert = matches!(decode.as_slice(), [d0, d1, ..] if d0 > d1);
    Ok(Plan {
        width,
        height,
        codec,
        colour,
        bits,
        invert,
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `/DecodeParms` of filter `index` (a dictionary, or an array with one per filter).
fn decode_parms<'a>(
    doc: &'a lopdf::Document,
    dict: &'a Dictionary,
    index: usize,
) -> Option<&'a Dictionary> {
    match get(doc, dict, b"DecodeParms")? {
        Object::Dictionary(d) => Some(d),
        Object::Array(a) => {
            let (_, o) = doc.dereference(a.get(index)?).ok()?;
            o.as_dict().ok()
        }
        _ => None,
    }
}

/// A colour space, by name (device or in the page's `/ColorSpace` resources) or array.
fn colour_space(
    doc: &lopdf::Document,
    space: &Object,
    resources: Option<&Dictionary>,
    depth: usize,
) -> Result<Colour, String> {
    let unsupported = |name: &[u8]| {
        Err(format!(
            "has the colour space /{}, which ocrbox does not read",
            lossy(name)
        ))
    };
    if depth > 4 {
        return Err("has a colour space that refers to itself".into());
    }
    let (family, args): (&[u8], &[Object]) = match space {
        Object::Name(name) => (name, &[]),
        Object::Array(a) => match a.first().and_then(|o| doc.dereference(o).ok()) {
            Some((_, Object::Name(name))) => (name, &a[1..]),
            _ => return Err("has a damaged colour space".into()),
        },
        _ => return Err("has a damaged colour space".into()),
    };
    let arg = |i: usize| {
        args.get(i)
            .and_then(|o| doc.dereference(o).ok())
            .map(|(_, o)| o)
    };
    match family {
        b"DeviceGray" | b"CalGray" | b"G" => Ok(Colour::Gray),
        b"DeviceRGB" | b"CalRGB" | b"RGB" => Ok(Colour::Rgb),
        b"DeviceCMYK" | b"CMYK" => Ok(Colour::Cmyk),
        b"ICCBased" => {
            let n = arg(0)
                .and_then(|o| o.as_stream().ok())
                .and_then(|s| get_int(doc, &s.dict, b"N"));
            match n {
                Some(1) => Ok(Colour::Gray),
                Some(3) => Ok(Colour::Rgb),
                Some(4) => Ok(Colour::Cmyk),
                _ => Err("has a damaged ICC colour space".into()),
            }
        }
        b"Indexed" | b"I" => {
            let base = arg(0).ok_or("has a damaged indexed colour space")?;
            let base = colour_space(doc, base, resources, depth + 1)?;
            let comps = base.components();
            if matches!(base, Colour::Indexed(_) | Colour::Mask) {
                return Err("has a damaged indexed colour space".into());
            }
            let hival = arg(1)
                .and_then(number)
                .filter(|h| (0.0..=255.0).contains(h))
                .ok_or("has a damaged indexed colour space")? as usize;
            let lookup: Vec<u8> = match arg(2) {
                Some(Object::String(s, _)) => s.clone(),
                Some(Object::Stream(s)) => s
                    .decompressed_content_with_limit(256 * 4)
                    .map_err(|_| "has a damaged palette")?,
                _ => return Err("has a damaged indexed colour space".into()),
            };
            let palette = (0..=hival)
                .map(|i| {
                    let c = |k: usize| lookup.get(i * comps + k).copied().unwrap_or(0);
                    match base {
                        Colour::Rgb => [c(0), c(1), c(2)],
                        Colour::Cmyk => cmyk(c(0), c(1), c(2), c(3)),
                        _ => [c(0); 3],
                    }
                })
                .collect();
            Ok(Colour::Indexed(palette))
        }
        name => {
            // A name of the page's own /ColorSpace resources.
            let named = resources
                .and_then(|r| get_dict(doc, r, b"ColorSpace"))
                .and_then(|d| d.get(name).ok())
                .and_then(|o| doc.dereference(o).ok())
                .map(|(_, o)| o);
            match named {
                Some(space) if args.is_empty() => colour_space(doc, space, resources, depth + 1),
                _ => unsupported(name),
            }
        }
    }
}

/// Naive CMYK → RGB (no ICC profile): good enough for reading text.
fn cmyk(c: u8, m: u8, y: u8, k: u8) -> [u8; 3] {
    let f = |v: u8| 255u16.saturating_sub(u16::from(v) + u16::from(k)) as u8;
    [f(c), f(m), f(y)]
}

/// The stream's data after its `pre` first (general) filters.
fn prefiltered<'s>(
    stream: &'s Stream,
    pre: usize,
    n: usize,
    limits: &Limits,
) -> Result<Cow<'s, [u8]>, DecodeError> {
    if pre == 0 {
        return Ok(Cow::Borrowed(&stream.content));
    }
    let mut dict = Dictionary::new();
    if let Ok(Object::Array(filters)) = stream.dict.get(b"Filter") {
        dict.set("Filter", Object::Array(filters[..pre].to_vec()));
    }
    if let Ok(Object::Array(parms)) = stream.dict.get(b"DecodeParms") {
        dict.set(
            "DecodeParms",
            Object::Array(parms.iter().take(pre).cloned().collect()),
        );
    }
    let head = Stream {
        dict,
        content: stream.content.clone(),
        allows_compression: false,
        start_position: None,
    };
    head.decompressed_content_with_limit(MAX_PREFILTERED.min(limits.max_alloc as usize))
        .map(Cow::Owned)
        .map_err(|e| {
            pdf_err(format!(
                "page {n}: its image data is damaged ({})",
                describe(&e)
            ))
        })
}

/// Decodes the image of page `n` as planned, to RGB at its full size.
fn decode_image(
    stream: &Stream,
    plan: &Plan,
    n: usize,
    limits: &Limits,
) -> Result<RgbImage, DecodeError> {
    let damaged = |what: String| DecodeError::Corrupt(format!("page {n} of the PDF: {what}"));
    let (w, h) = (plan.width, plan.height);
    match plan.codec {
        Codec::Jpeg { pre } => {
            let data = prefiltered(stream, pre, n, limits)?;
            let mut img = decode_jpeg(&data, limits)?;
            if plan.invert && !matches!(plan.colour, Colour::Cmyk) {
                img.invert();
            }
            // Grey and RGB JPEGs come out as they are; alpha cannot occur.
            Ok(match img {
                DynamicImage::ImageRgb8(rgb) => rgb,
                other => flatten(other),
            })
        }
        Codec::G4 {
            pre,
            black_is_1,
            byte_align,
            rows,
        } => {
            let data = prefiltered(stream, pre, n, limits)?;
            // CCITT's black pel is the sample 1 when /BlackIs1, else 0; a sample of 1 is white
            // (and leaves the page under an /ImageMask) unless /Decode swaps them.
            let white_of = |sample: bool| if sample != plan.invert { 255 } else { 0 };
            let p = ccitt::Params {
                width: w,
                height: h,
                rows,
                byte_align,
                black: white_of(black_is_1),
                white: white_of(!black_is_1),
            };
            let mut out = RgbImage::new(w, h);
            let stride = w as usize * 3;
            let raw: &mut [u8] = &mut out;
            ccitt::decode_g4(&data, &p, |y, row| {
                let dst = &mut raw[y as usize * stride..][..stride];
                for (px, &g) in dst.chunks_exact_mut(3).zip(row) {
                    px.fill(g);
                }
            })
            .map_err(damaged)?;
            Ok(out)
        }
        Codec::Raw => {
            let comps = plan.colour.components();
            let row_bytes = (w as usize * comps * usize::from(plan.bits)).div_ceil(8);
            let need = row_bytes * h as usize;
            // Enough for the rows and a PNG predictor's tag byte per row, and no more: a Flate
            // bomb stops here. The limit bounds each filter's output.
            let cap = ((row_bytes + 1) * h as usize + (64 << 10)).min(limits.max_alloc as usize);
            let data = stream
                .decompressed_content_with_limit(cap)
                .map_err(|e| match e {
                    lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded {
                        ..
                    }) => damaged(format!(
                        "its image data inflates past the {need} bytes a {w}x{h} image needs"
                    )),
                    e => damaged(format!("its image data is damaged ({})", describe(&e))),
                })?;
            if data.len() < need {
                return Err(damaged(format!(
                    "its image data ends early ({} of {need} bytes)",
                    data.len()
                )));
            }
            Ok(samples_to_rgb(data, plan, row_bytes))
        }
    }
}

/// Unpacks rows of `row_bytes` (1, 2, 4, 8 or 16 bits per sample) into RGB.
fn samples_to_rgb(mut data: Vec<u8>, plan: &Plan, row_bytes: usize) -> RgbImage {
    let (w, h) = (plan.width, plan.height);
    if plan.bits == 8 && !plan.invert && matches!(plan.colour, Colour::Rgb) {
        data.truncate(row_bytes * h as usize);
        return RgbImage::from_raw(w, h, data).expect("rows of the right size");
    }
    let comps = plan.colour.components();
    let bits = usize::from(plan.bits);
    let max = (1u32 << bits.min(8)) - 1;
    let sample = |row: &[u8], i: usize| -> u32 {
        match bits {
            8 => u32::from(row[i]),
            16 => u32::from(row[2 * i]),
            _ => {
                let bit = i * bits;
                u32::from(row[bit / 8] >> (8 - bits - bit % 8)) & max
            }
        }
    };
    let level = |s: u32| -> u8 {
        let v = (s * 255 / max) as u8;
        if plan.invert {
            255 - v
        } else {
            v
        }
    };
    let mut out = RgbImage::new(w, h);
    for (y, dst) in out.chunks_exact_mut(w as usize * 3).enumerate() {
        let row = &data[y * row_bytes..][..row_bytes];
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            let i = x * comps;
            let rgb = match &plan.colour {
                Colour::Gray | Colour::Mask => [level(sample(row, i)); 3],
                Colour::Rgb => [
                    level(sample(row, i)),
                    level(sample(row, i + 1)),
                    level(sample(row, i + 2)),
                ],
                Colour::Cmyk => cmyk(
                    level(sample(row, i)),
                    level(sample(row, i + 1)),
                    level(sample(row, i + 2)),
                    level(sample(row, i + 3)),
                ),
                Colour::Indexed(palette) => {
                    let top = palette.len() - 1;
                    let s = (sample(row, i) as usize).min(top);
                    palette[if plan.invert { top - s } else { s }]
                }
            };
            px.copy_from_slice(&rgb);
        }
    }
    out
}

/// How the image's pixel grid lies on the page as shown: where its columns (left to right) and
/// rows (top to bottom) point on screen, each one of right (1, 0), down (0, 1), left or up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Turn {
    col: (i32, i32),
    row: (i32, i32),
}

impl Turn {
    const UPRIGHT: Turn = Turn {
        col: (1, 0),
        row: (0, 1),
    };

    /// From the matrix the image is drawn with (image space's unit square, first row at its
    /// top) and the page's `/Rotate` (clockwise). A skewed drawing counts as upright.
    fn of(ctm: &Matrix, rotate: i64) -> Turn {
        // Screen y points down, PDF user space y up.
        let snap = |x: f64, y: f64| -> Option<(i32, i32)> {
            if x.abs() >= y.abs() && x != 0.0 {
                Some((x.signum() as i32, 0))
            } else if y != 0.0 {
                Some((0, y.signum() as i32))
            } else {
                None
            }
        };
        let (a, b, c, d) = (ctm[0], ctm[1], ctm[2], ctm[3]);
        let mut turn = match (snap(a, -b), snap(-c, d)) {
            (Some(col), Some(row)) if col.0 * row.0 + col.1 * row.1 == 0 => Turn { col, row },
            _ => Turn::UPRIGHT,
        };
        let clockwise = |(x, y): (i32, i32)| (-y, x);
        for _ in 0..rotate.rem_euclid(360) / 90 {
            turn = Turn {
                col: clockwise(turn.col),
                row: clockwise(turn.row),
            };
        }
        turn
    }

    /// The size of a `w`×`h` image once turned.
    fn size(&self, w: u32, h: u32) -> (u32, u32) {
        if self.col.0 != 0 {
            (w, h)
        } else {
            (h, w)
        }
    }

    fn apply(&self, img: RgbImage) -> RgbImage {
        if *self == Turn::UPRIGHT {
            return img;
        }
        let (w, h) = img.dimensions();
        let (ow, oh) = self.size(w, h);
        let (w1, h1) = (i64::from(w) - 1, i64::from(h) - 1);
        // Where source (0, 0) lands: pushed right/down by the axes that point left/up.
        let shift =
            |c: i32, r: i32| -> i64 { (if c < 0 { w1 } else { 0 }) + (if r < 0 { h1 } else { 0 }) };
        let (sx, sy) = (shift(self.col.0, self.row.0), shift(self.col.1, self.row.1));
        let mut out = RgbImage::new(ow, oh);
        for (x, y, p) in img.enumerate_pixels() {
            let (x, y) = (i64::from(x), i64::from(y));
            let ox = sx + x * i64::from(self.col.0) + y * i64::from(self.row.0);
            let oy = sy + x * i64::from(self.col.1) + y * i64::from(self.row.1);
            out.put_pixel(ox as u32, oy as u32, *p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_follow_rotate_and_cm() {
        let upright = Turn::of(&[612.0, 0.0, 0.0, 792.0, 0.0, 0.0], 0);
        assert_eq!(upright, Turn::UPRIGHT);
        // /Rotate 90: the image's columns run down the screen, its rows right to left.
        let r90 = Turn::of(&IDENTITY, 90);
        assert_eq!(
            r90,
            Turn {
                col: (0, 1),
                row: (-1, 0)
            }
        );
        // The same turn drawn by the content instead: cm [0 -1 1 0 0 H].
        assert_eq!(Turn::of(&[0.0, -1.0, 1.0, 0.0, 0.0, 792.0], 0), r90);
        assert_eq!(Turn::of(&IDENTITY, -270), r90);
        assert_eq!(
            Turn::of(&IDENTITY, 180),
            Turn {
                col: (-1, 0),
                row: (0, -1)
            }
        );

        // A 3×2 image with a marked top-left pixel, turned 90° clockwise: 2×3, mark top-right.
        let mut img = RgbImage::new(3, 2);
        img.put_pixel(0, 0, image::Rgb([9, 9, 9]));
        let out = r90.apply(img);
        assert_eq!(out.dimensions(), (2, 3));
        assert_eq!(out.get_pixel(1, 0).0, [9, 9, 9]);
    }

    #[test]
    fn nesting_is_checked_outside_streams_only() {
        let deep = format!("%PDF-1.4\n{}", "[".repeat(100_000));
        assert!(check_nesting(deep.as_bytes()).is_err());
        let mut ok = b"%PDF-1.4\n1 0 obj << /Length 9 >> stream\n".to_vec();
        ok.extend_from_slice(&[b'['; 5000]);
        ok.extend_from_slice(b"\nendstream endobj (((([[[[ \\) ) ) ) )");
        assert!(check_nesting(&ok).is_ok());
    }

    #[test]
    fn content_tokens() {
        let data = b"q 612 0 0 792 0 0 cm /Im0 Do Q BT 3 Tr (a\\)b) Tj [(x) 2 (y)] TJ ET % c\n<<>>";
        let mut pos = 0;
        let mut ops = Vec::new();
        while let Some(t) = next_token(data, &mut pos) {
            if let Token::Operator(op) = t {
                ops.push(String::from_utf8_lossy(op).into_owned());
            }
        }
        assert_eq!(ops, ["q", "cm", "Do", "Q", "BT", "Tr", "Tj", "TJ", "ET"]);
    }
}
