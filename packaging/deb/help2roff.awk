# One `--help` text of ocrbox (clap's layout) on stdin -> man page roff, for
# scripts/build-deb.sh. mode=body: the text with its lists as .TP items (about=0
# drops the first paragraph, the command's one-line summary, shown elsewhere);
# mode=synopsis: only the Usage line, command name in bold.
function esc(s) {
	gsub(/\\/, "\\e", s)
	if (s ~ /^[.']/) s = "\\&" s
	return s
}
function opt(s) {
	s = esc(s)
	gsub(/-/, "\\-", s)
	return s
}
function para() {
	if (!open) { print ".PP"; open = 1 }
}
BEGIN { open = 0; inlist = 0; skipping = (mode == "body" && about == 0) }
{ sub(/[ \t\r]+$/, "") }
mode == "synopsis" {
	if ($0 ~ /^Usage: /) {
		u = substr($0, 8)
		if (index(u, name) == 1) u = substr(u, length(name) + 1)
		print "\\fB" opt(name) "\\fR" opt(u)
		print ".br"
	}
	next
}
skipping { if ($0 == "") skipping = 0; next }
$0 == "" { open = 0; next }
/^Usage: / { print ".PP"; print "\\fBUsage:\\fR " opt(substr($0, 8)); open = 1; inlist = 0; next }
/^[A-Z][A-Za-z ]*:$/ { print ".PP"; print "\\fB" esc($0) "\\fR"; open = 1; inlist = 1; next }
{ match($0, /^ */); indent = RLENGTH }   # (no /x{m,n}/: mawk lacks it)
# An item: a term at a small indent, then its text after two spaces or on the next lines.
inlist && indent >= 1 && indent < 10 {
	s = $0; sub(/^ +/, "", s)
	print ".TP"
	i = match(s, /  +/)
	if (i > 0) {
		d = substr(s, i); sub(/^ +/, "", d)
		print "\\fB" opt(substr(s, 1, i - 1)) "\\fR"
		print esc(d)
	} else {
		print "\\fB" opt(s) "\\fR"
	}
	next
}
inlist && indent >= 10 { s = $0; sub(/^ +/, "", s); print esc(s); next }
{ inlist = 0; para(); s = $0; sub(/^ +/, "", s); print esc(s) }
