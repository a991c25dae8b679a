//! The terminal printer: turns matches into text, JSON or a user template; and the
//! template and highlighting walk it shares with the IRC sink ([`Markup`]).

use std::io::{self, Write};

use crate::escape;
use crate::line::{format_ts, LineRef};
use crate::protocol::WireLineRef;

/// `--format`: `text`, `json`, or a template such as `'{host} {path}: {text}'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Template(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Seq,
    Ts,
    Host,
    Path,
    Set,
    Stream,
    Text,
}

impl Field {
    const NAMES: [(&'static str, Field); 7] = [
        ("seq", Field::Seq),
        ("ts", Field::Ts),
        ("host", Field::Host),
        ("path", Field::Path),
        ("set", Field::Set),
        ("stream", Field::Stream),
        ("text", Field::Text),
    ];
}

/// Why a `--format` cannot be used; each message quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "unknown format {0:?}: use text, json, or a template such as '{{host}} {{path}}: {{text}}'"
    )]
    Unknown(String),
    #[error("a lone }} in format {0:?} (a literal one is written }}}})")]
    LoneClose(String),
    #[error("unclosed {{ in format {0:?} (a literal one is written {{{{)")]
    Unclosed(String),
    #[error("unknown field {{{0}}} in format (fields: {known})", known = Field::known())]
    UnknownField(String),
}

impl Field {
    /// The field names, for the message naming them.
    fn known() -> String {
        let known: Vec<_> = Field::NAMES.iter().map(|(n, _)| *n).collect();
        known.join(", ")
    }
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, FormatError> {
        match s {
            "text" => return Ok(Format::Text),
            "json" => return Ok(Format::Json),
            _ => {}
        }
        if !s.contains('{') {
            return Err(FormatError::Unknown(s.to_owned()));
        }
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => return Err(FormatError::LoneClose(s.to_owned())),
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(FormatError::Unclosed(s.to_owned()));
                    }
                    let field = Field::NAMES
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, f)| *f)
                        .ok_or_else(|| FormatError::UnknownField(name.clone()))?;
                    if !lit.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Field(field));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(Format::Template(pieces))
    }
}

#[derive(Debug, Clone)]
pub struct PrinterOptions {
    pub format: Format,
    /// Text format: prefix each line with its file name…
    pub with_filename: bool,
    /// …and its host (lines from a hub come from many hosts).
    pub with_host: bool,
    /// Text format: colour file names and matches (ANSI).
    pub color: bool,
    /// Text and templates: control characters in what came from outside (text,
    /// paths, hosts) written visibly ([`crate::escape`]); JSON escapes them anyway.
    pub escape: bool,
}

pub struct Printer<W: Write> {
    out: W,
    options: PrinterOptions,
    line: Vec<u8>,
}

const MATCH_ON: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";
const FILE_COLORS: [&str; 8] = ["32", "33", "34", "35", "36", "92", "94", "95"];

impl<W: Write> Printer<W> {
    pub fn new(out: W, options: PrinterOptions) -> Self {
        Printer {
            out,
            options,
            line: Vec::with_capacity(1024),
        }
    }

    /// Whether the printer shows highlight spans (so they are worth computing).
    pub fn needs_spans(&self) -> bool {
        match self.options.format {
            Format::Json => true,
            Format::Text => self.options.color,
            Format::Template(_) => false,
        }
    }

    pub fn print(&mut self, line: LineRef<'_>, spans: &[[usize; 2]]) -> io::Result<()> {
        self.print_with(line, spans, b':')
    }

    /// A context line (`-A/-B/-C`): as [`print`](Self::print), with `path-` for
    /// `path:` and no highlight, as grep marks them.
    pub fn print_context(&mut self, line: LineRef<'_>) -> io::Result<()> {
        self.print_with(line, &[], b'-')
    }

    /// grep's `--` between groups of context that are not adjacent (text only:
    /// JSON and template readers get nothing but lines).
    pub fn group_separator(&mut self) -> io::Result<()> {
        match self.options.format {
            Format::Text if self.options.color => self.out.write_all(b"\x1b[36m--\x1b[0m\n"),
            Format::Text => self.out.write_all(b"--\n"),
            _ => Ok(()),
        }
    }

    fn print_with(&mut self, line: LineRef<'_>, spans: &[[usize; 2]], sep: u8) -> io::Result<()> {
        let buf = &mut self.line;
        buf.clear();
        match &self.options.format {
            Format::Json => {
                serde_json::to_writer(&mut *buf, &WireLineRef::new(line, spans))
                    .map_err(io::Error::other)?;
                escape::json_controls(buf);
            }
            Format::Text => {
                let (color, esc) = (self.options.color, self.options.escape);
                if self.options.with_filename {
                    let name = if self.options.with_host {
                        &line.stream.id
                    } else {
                        &line.stream.path
                    };
                    if color {
                        write!(buf, "\x1b[{}m", file_color(name))?;
                        escape::push(buf, name, esc);
                        write!(buf, "{RESET}\x1b[36m{}{RESET}", sep as char)?;
                    } else {
                        escape::push(buf, name, esc);
                        buf.push(sep);
                    }
                }
                let spans = if color { spans } else { &[] };
                highlight(buf, line.text, spans, &Ansi { escape: esc });
            }
            Format::Template(pieces) => {
                let markup = Ansi {
                    escape: self.options.escape,
                };
                render_template(buf, pieces, line, &[], &markup);
            }
        }
        buf.push(b'\n');
        self.out.write_all(buf)
    }

    /// A divider for a marker (a deploy, say), in text format only: JSON and template
    /// readers get nothing but lines.
    pub fn marker(&mut self, ts: &str, text: &str) -> io::Result<()> {
        if self.options.format == Format::Text {
            let mut buf = Vec::with_capacity(text.len() + 64);
            buf.extend_from_slice("──── ".as_bytes());
            escape::push(&mut buf, text, self.options.escape);
            writeln!(buf, " ({ts}) ────")?;
            self.out.write_all(&buf)?;
        }
        Ok(())
    }

    /// `-c`'s `path:count` (the path only with a file name prefix, as grep), or
    /// `-l`'s `path`.
    pub fn summary_line(&mut self, path: &str, count: Option<u64>) -> io::Result<()> {
        let mut buf = Vec::with_capacity(path.len() + 24);
        match count {
            Some(n) => {
                if self.options.with_filename {
                    escape::push(&mut buf, path, self.options.escape);
                    buf.push(b':');
                }
                write!(buf, "{n}")?;
            }
            None => escape::push(&mut buf, path, self.options.escape),
        }
        buf.push(b'\n');
        self.out.write_all(&buf)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A colour for a file name that stays the same from run to run.
fn file_color(path: &str) -> &'static str {
    // FNV-1a: stable across runs and Rust versions, unlike the std hasher.
    let hash = path.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    FILE_COLORS[(hash % FILE_COLORS.len() as u64) as usize]
}

/// How a medium takes what is written into it: a terminal escapes control
/// characters and marks matches with ANSI colour, IRC drops them and uses mIRC
/// codes. [`render_template`] and [`highlight`] are the one walk over a template and
/// over a line's matches for both.
pub trait Markup {
    /// Text from outside (a log line, a host, a path), made safe for the medium.
    fn text(&self, buf: &mut Vec<u8>, s: &str);
    /// The user's own template text.
    fn literal(&self, buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(s.as_bytes());
    }
    /// What starts and what ends a highlighted match.
    fn match_codes(&self) -> (&'static str, &'static str);
}

/// A terminal's: bold red matches, control characters escaped when `escape`.
struct Ansi {
    escape: bool,
}

impl Markup for Ansi {
    fn text(&self, buf: &mut Vec<u8>, s: &str) {
        escape::push(buf, s, self.escape);
    }

    fn match_codes(&self) -> (&'static str, &'static str) {
        (MATCH_ON, RESET)
    }
}

/// Fills in a template for `line`, its text with the matches in `spans` marked.
pub fn render_template(
    buf: &mut Vec<u8>,
    pieces: &[Piece],
    line: LineRef<'_>,
    spans: &[[usize; 2]],
    markup: &impl Markup,
) {
    for piece in pieces {
        match piece {
            Piece::Literal(s) => markup.literal(buf, s),
            // Cannot fail: writing into a Vec.
            Piece::Field(Field::Seq) => buf.extend_from_slice(line.seq.to_string().as_bytes()),
            Piece::Field(Field::Ts) => buf.extend_from_slice(format_ts(line.ts).as_bytes()),
            Piece::Field(Field::Host) => markup.text(buf, &line.stream.host),
            Piece::Field(Field::Path) => markup.text(buf, &line.stream.path),
            Piece::Field(Field::Set) => markup.text(buf, &line.stream.set),
            Piece::Field(Field::Stream) => markup.text(buf, &line.stream.id),
            Piece::Field(Field::Text) => highlight(buf, line.text, spans, markup),
        }
    }
}

/// Writes `text` with the character ranges in `spans` (sorted, maybe overlapping)
/// marked as matches, the text made safe by `markup`.
pub fn highlight(buf: &mut Vec<u8>, text: &str, spans: &[[usize; 2]], markup: &impl Markup) {
    let bytes_at = |chars: usize| -> usize {
        if text.is_ascii() {
            chars.min(text.len())
        } else {
            text.char_indices()
                .nth(chars)
                .map_or(text.len(), |(b, _)| b)
        }
    };
    let (on, off) = markup.match_codes();
    let mut pos = 0;
    let mut i = 0;
    while i < spans.len() {
        let start = spans[i][0];
        let mut end = spans[i][1];
        // Merge overlapping spans into one highlighted run.
        while i + 1 < spans.len() && spans[i + 1][0] <= end {
            end = end.max(spans[i + 1][1]);
            i += 1;
        }
        let (s, e) = (bytes_at(start).max(pos), bytes_at(end));
        if s < e {
            markup.text(buf, &text[pos..s]);
            buf.extend_from_slice(on.as_bytes());
            markup.text(buf, &text[s..e]);
            buf.extend_from_slice(off.as_bytes());
            pos = e;
        }
        i += 1;
    }
    markup.text(buf, &text[pos..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{LogLine, Stream};
    use anyhow::Context;
    use std::sync::Arc;

    fn line(text: &str) -> LogLine {
        LogLine::new(
            Arc::new(Stream::new("web01", "/var/log/app.log", "web")),
            7,
            std::time::UNIX_EPOCH,
            text,
        )
    }

    fn print(options: PrinterOptions, l: &LogLine, spans: &[[usize; 2]]) -> anyhow::Result<String> {
        let mut out = Vec::new();
        Printer::new(&mut out, options)
            .print(l.as_line_ref(), spans)
            .context("printing the line")?;
        String::from_utf8(out).context("the printed line is not UTF-8")
    }

    #[test]
    fn formats() -> anyhow::Result<()> {
        let l = line("an error here");
        let text = |with_filename, color| PrinterOptions {
            format: Format::Text,
            with_filename,
            with_host: false,
            color,
            escape: false,
        };
        assert_eq!(print(text(false, false), &l, &[[3, 8]])?, "an error here\n");
        assert_eq!(
            print(text(true, false), &l, &[])?,
            "/var/log/app.log:an error here\n"
        );
        assert_eq!(
            print(text(false, true), &l, &[[3, 6], [4, 8]])?,
            "an \x1b[1;31merror\x1b[0m here\n"
        );
        let json = print(
            PrinterOptions {
                format: Format::Json,
                with_filename: false,
                with_host: false,
                color: false,
                escape: false,
            },
            &l,
            &[[3, 8]],
        )?;
        assert_eq!(
            json,
            r#"{"seq":7,"ts":"1970-01-01T00:00:00.000Z","host":"web01","path":"/var/log/app.log","set":"web","text":"an error here","spans":[[3,8]]}"#.to_owned() + "\n"
        );
        let tpl = Format::parse("{{{host}}} {path}: {text}")?;
        let out = print(
            PrinterOptions {
                format: tpl,
                with_filename: false,
                with_host: false,
                color: false,
                escape: false,
            },
            &l,
            &[],
        )?;
        assert_eq!(out, "{web01} /var/log/app.log: an error here\n");
        assert!(Format::parse("{nope}")
            .unwrap_err()
            .to_string()
            .contains("unknown field {nope}"));
        assert!(Format::parse("yaml").is_err());
        // Braces that open no field, or close none: said, not printed as they are.
        for (bad, why) in [
            ("pre {text", "unclosed {"),
            ("{text} {", "unclosed {"),
            ("{text} }", "a lone }"),
        ] {
            let e = Format::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        Ok(())
    }

    /// Escaping covers the name and the text; our own colour codes stay codes.
    #[test]
    fn escapes_controls_but_not_its_own_colours() -> anyhow::Result<()> {
        let l = LogLine::new(
            Arc::new(Stream::new("h", "/x\x1b]0;t\x07.log", "s")),
            1,
            std::time::UNIX_EPOCH,
            "a \x1b[2J error\u{9b}",
        );
        let options = |color| PrinterOptions {
            format: Format::Text,
            with_filename: true,
            with_host: false,
            color,
            escape: true,
        };
        assert_eq!(
            print(options(false), &l, &[])?,
            "/x\\x1b]0;t\\x07.log:a \\x1b[2J error\\x9b\n"
        );
        let colored = print(options(true), &l, &[[7, 12]])?;
        assert!(
            colored.ends_with("a \\x1b[2J \x1b[1;31merror\x1b[0m\\x9b\n"),
            "{colored:?}"
        );
        Ok(())
    }

    #[test]
    fn highlight_handles_multibyte() -> anyhow::Result<()> {
        let mut buf = Vec::new();
        highlight(&mut buf, "é error é", &[[2, 7]], &Ansi { escape: false });
        assert_eq!(
            String::from_utf8(buf).context("the highlighted text is not UTF-8")?,
            "é \x1b[1;31merror\x1b[0m é"
        );
        Ok(())
    }
}
