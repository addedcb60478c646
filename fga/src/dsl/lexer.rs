//! Tokenizer mirroring `OpenFGALexer.g4`: longest match wins, ties go to the
//! rule declared first (keywords before identifiers), and `condition` switches
//! to a parameter-list mode that ends at the first `)`.

/// Token kinds of the OpenFGA lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Hash,
    Colon,
    Comma,
    And,
    Or,
    ButNot,
    From,
    Module,
    Model,
    Schema,
    SchemaVersion,
    Extend,
    Type,
    Condition,
    Relations,
    Relation,
    Define,
    With,
    /// Any CEL operator, literal or punctuation that the model grammar only
    /// sees inside condition expressions.
    CelOther,
    Less,
    Greater,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Star,
    Whitespace,
    Identifier,
    ExtendedIdentifier,
    DollarExpression,
    Newline,
    /// A CEL `//` comment (hidden from the parser).
    CelComment,
    ParamContainer,
    ParamType,
    /// Input no rule matches (reported when the parser reaches it).
    Invalid,
    Eof,
}

/// One token with its 1-based position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    pub line: usize,
    pub column: usize,
}

const KEYWORDS: &[(&str, Kind)] = &[
    ("#", Kind::Hash),
    (":", Kind::Colon),
    (",", Kind::Comma),
    ("and", Kind::And),
    ("or", Kind::Or),
    ("but not", Kind::ButNot),
    ("from", Kind::From),
    ("module", Kind::Module),
    ("model", Kind::Model),
    ("schema", Kind::Schema),
    ("extend", Kind::Extend),
    ("type", Kind::Type),
    ("condition", Kind::Condition),
    ("relations", Kind::Relations),
    ("relation", Kind::Relation),
    ("define", Kind::Define),
    ("with", Kind::With),
    ("==", Kind::CelOther),
    ("!=", Kind::CelOther),
    ("in", Kind::CelOther),
    ("<", Kind::Less),
    ("<=", Kind::CelOther),
    (">=", Kind::CelOther),
    (">", Kind::Greater),
    ("&&", Kind::CelOther),
    ("||", Kind::CelOther),
    ("[", Kind::LBracket),
    ("]", Kind::RBracket),
    ("{", Kind::LBrace),
    ("}", Kind::RBrace),
    ("(", Kind::LParen),
    (")", Kind::RParen),
    (".", Kind::CelOther),
    ("-", Kind::CelOther),
    ("!", Kind::CelOther),
    ("?", Kind::CelOther),
    ("+", Kind::CelOther),
    ("*", Kind::Star),
    ("/", Kind::CelOther),
    ("%", Kind::CelOther),
    ("true", Kind::CelOther),
    ("false", Kind::CelOther),
    ("null", Kind::CelOther),
    ("$expression", Kind::DollarExpression),
];

const PARAM_TYPES: &[&str] = &[
    "bool",
    "string",
    "int",
    "uint",
    "double",
    "duration",
    "timestamp",
    "ipaddress",
];

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0c)
}

fn is_letter(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn count_while(s: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    s.iter().take_while(|&&b| pred(b)).count()
}

/// `WHITESPACE? NL WHITESPACE? NEWLINE?`, i.e. blanks, one line break, then any
/// mix of blanks and line breaks.
fn match_newline(s: &[u8]) -> usize {
    let lead = count_while(s, is_ws);
    match s.get(lead) {
        Some(b'\n' | b'\r') => {
            lead + 1 + count_while(&s[lead + 1..], |b| is_ws(b) || b == b'\n' || b == b'\r')
        }
        _ => 0,
    }
}

fn match_identifier(s: &[u8]) -> usize {
    if s.first().is_some_and(|&b| is_letter(b)) {
        1 + count_while(&s[1..], |b| is_word(b) || b == b'-')
    } else {
        0
    }
}

/// `(LETTER|_) ((/|.|-)? (LETTER|DIGIT|_)+)*`
fn match_extended_identifier(s: &[u8]) -> usize {
    if !s.first().is_some_and(|&b| is_letter(b)) {
        return 0;
    }
    let mut end = 1;
    loop {
        let sep = usize::from(matches!(s.get(end), Some(b'/' | b'.' | b'-')));
        let word = count_while(&s[(end + sep).min(s.len())..], is_word);
        if word == 0 {
            return end;
        }
        end += sep + word;
    }
}

fn match_number(s: &[u8]) -> (usize, Kind) {
    let digits = count_while(s, |b| b.is_ascii_digit());
    let exponent = |at: usize| -> usize {
        if !matches!(s.get(at), Some(b'e' | b'E')) {
            return 0;
        }
        let sign = usize::from(matches!(s.get(at + 1), Some(b'+' | b'-')));
        let exp_digits = count_while(&s[(at + 1 + sign).min(s.len())..], |b| b.is_ascii_digit());
        if exp_digits == 0 {
            0
        } else {
            1 + sign + exp_digits
        }
    };
    if digits == 0 {
        // `.5` style float
        if s.first() == Some(&b'.') {
            let frac = count_while(&s[1..], |b| b.is_ascii_digit());
            if frac > 0 {
                let len = 1 + frac;
                return (len + exponent(len), Kind::CelOther);
            }
        }
        return (0, Kind::Invalid);
    }
    if s.starts_with(b"0x") || s.starts_with(b"0X") {
        let hex = count_while(&s[2..], |b| b.is_ascii_hexdigit());
        if hex > 0 {
            let len = 2 + hex;
            let unsigned = usize::from(matches!(s.get(len), Some(b'u' | b'U')));
            return (len + unsigned, Kind::CelOther);
        }
    }
    // SCHEMA_VERSION (DIGIT+ '.' DIGIT+) is declared before NUM_FLOAT and wins ties.
    if s.get(digits) == Some(&b'.') {
        let frac = count_while(&s[digits + 1..], |b| b.is_ascii_digit());
        if frac > 0 {
            let len = digits + 1 + frac;
            let exp = exponent(len);
            let kind = if exp == 0 {
                Kind::SchemaVersion
            } else {
                Kind::CelOther
            };
            return (len + exp, kind);
        }
    }
    let exp = exponent(digits);
    if exp > 0 {
        return (digits + exp, Kind::CelOther);
    }
    let unsigned = usize::from(matches!(s.get(digits), Some(b'u' | b'U')));
    (digits + unsigned, Kind::CelOther)
}

/// Length of a valid CEL escape sequence starting at a backslash, or 0.
fn escape_len(s: &[u8]) -> usize {
    let hex = |from: usize, n: usize| {
        s.len() >= from + n && s[from..from + n].iter().all(u8::is_ascii_hexdigit)
    };
    match s.get(1) {
        Some(
            b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'"' | b'\'' | b'\\' | b'?' | b'`',
        ) => 2,
        Some(b'x' | b'X') if hex(2, 2) => 4,
        Some(b'u') if hex(2, 4) => 6,
        Some(b'U') if hex(2, 8) => 10,
        Some(b'0'..=b'3')
            if matches!(s.get(2), Some(b'0'..=b'7')) && matches!(s.get(3), Some(b'0'..=b'7')) =>
        {
            4
        }
        _ => 0,
    }
}

/// CEL string literals, including raw (`r"..."`) and triple-quoted forms.
fn match_string(s: &[u8]) -> usize {
    let (raw, body) = match s.first() {
        Some(b'r' | b'R') => (true, &s[1..]),
        _ => (false, s),
    };
    let prefix = usize::from(raw);
    let Some(&quote) = body.first().filter(|&&b| b == b'"' || b == b'\'') else {
        return 0;
    };
    let triple = body.len() >= 3 && body[1] == quote && body[2] == quote;
    if triple {
        let closing = [quote; 3];
        let mut i = 3;
        while i < body.len() {
            if body[i..].starts_with(&closing) {
                return prefix + i + 3;
            }
            if body[i] == b'\\' && !raw {
                match escape_len(&body[i..]) {
                    0 => return 0,
                    n => i += n,
                }
            } else {
                i += 1;
            }
        }
        return 0;
    }
    let mut i = 1;
    while i < body.len() {
        match body[i] {
            b if b == quote => return prefix + i + 1,
            b'\n' | b'\r' => return 0,
            b'\\' if !raw => match escape_len(&body[i..]) {
                0 => return 0,
                n => i += n,
            },
            _ => i += 1,
        }
    }
    0
}

/// Splits preprocessed DSL text into tokens. Hidden CEL `//` comments are dropped.
pub(crate) fn tokenize(source: &str) -> Vec<Token<'_>> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    let mut column = 1;
    let mut in_condition_params = false;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let (mut len, mut kind) = if in_condition_params {
            condition_mode_token(rest)
        } else {
            default_mode_token(rest)
        };
        if len == 0 {
            // Like ANTLR, skip one character and keep lexing.
            len = source[pos..].chars().next().map_or(1, char::len_utf8);
            kind = Kind::Invalid;
        }
        let text = &source[pos..pos + len];
        match kind {
            Kind::Condition => in_condition_params = true,
            Kind::RParen if in_condition_params => in_condition_params = false,
            _ => {}
        }
        if kind != Kind::CelComment {
            tokens.push(Token {
                kind,
                text,
                line,
                column,
            });
        }
        for ch in text.chars() {
            if ch == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        pos += len;
    }
    tokens.push(Token {
        kind: Kind::Eof,
        text: "",
        line,
        column,
    });
    tokens
}

fn default_mode_token(s: &[u8]) -> (usize, Kind) {
    // Candidates in declaration order; the first longest one wins.
    let mut best = (0, Kind::Invalid);
    let mut offer = |len: usize, kind: Kind| {
        if len > best.0 {
            best = (len, kind);
        }
    };
    for &(literal, kind) in KEYWORDS {
        if s.starts_with(literal.as_bytes()) {
            offer(literal.len(), kind);
        }
    }
    let (num_len, num_kind) = match_number(s);
    offer(count_while(s, is_ws), Kind::Whitespace);
    if s.starts_with(b"//") {
        offer(2 + count_while(&s[2..], |b| b != b'\n'), Kind::CelComment);
    }
    offer(num_len, num_kind);
    let string = match_string(s);
    offer(string, Kind::CelOther);
    if matches!(s.first(), Some(b'b' | b'B')) {
        let bytes = match_string(&s[1..]);
        offer(if bytes == 0 { 0 } else { 1 + bytes }, Kind::CelOther);
    }
    offer(match_identifier(s), Kind::Identifier);
    offer(match_extended_identifier(s), Kind::ExtendedIdentifier);
    offer(match_newline(s), Kind::Newline);
    best
}

fn condition_mode_token(s: &[u8]) -> (usize, Kind) {
    let mut best = (0, Kind::Invalid);
    let mut offer = |len: usize, kind: Kind| {
        if len > best.0 {
            best = (len, kind);
        }
    };
    if s.first() == Some(&b')') {
        offer(1, Kind::RParen);
    }
    for container in ["map", "list"] {
        if s.starts_with(container.as_bytes()) {
            offer(container.len(), Kind::ParamContainer);
        }
    }
    for param_type in PARAM_TYPES {
        if s.starts_with(param_type.as_bytes()) {
            offer(param_type.len(), Kind::ParamType);
        }
    }
    let punctuation = match s.first() {
        Some(b'<') => Kind::Less,
        Some(b'>') => Kind::Greater,
        Some(b'(') => Kind::LParen,
        Some(b':') => Kind::Colon,
        Some(b',') => Kind::Comma,
        _ => Kind::Invalid,
    };
    if punctuation != Kind::Invalid {
        offer(1, punctuation);
    }
    offer(count_while(s, is_ws), Kind::Whitespace);
    offer(match_identifier(s), Kind::Identifier);
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Kind> {
        tokenize(source).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn keywords_win_ties_and_longest_match_wins() {
        assert_eq!(
            kinds("type types"),
            [Kind::Type, Kind::Whitespace, Kind::Identifier, Kind::Eof]
        );
        assert_eq!(kinds("but not"), [Kind::ButNot, Kind::Eof]);
        assert_eq!(kinds("a.b/c"), [Kind::ExtendedIdentifier, Kind::Eof]);
        assert_eq!(kinds("a-b"), [Kind::Identifier, Kind::Eof]);
        assert_eq!(kinds("1.1"), [Kind::SchemaVersion, Kind::Eof]);
    }

    #[test]
    fn newline_absorbs_indentation_and_blank_lines() {
        let tokens = tokenize("a \n\n   b");
        assert_eq!(tokens[1].kind, Kind::Newline);
        assert_eq!(tokens[1].text, " \n\n   ");
        assert_eq!((tokens[2].line, tokens[2].column), (3, 4));
    }

    #[test]
    fn condition_mode_ends_at_closing_paren() {
        assert_eq!(
            kinds("condition c(m: map<int>) {"),
            [
                Kind::Condition,
                Kind::Whitespace,
                Kind::Identifier,
                Kind::LParen,
                Kind::Identifier,
                Kind::Colon,
                Kind::Whitespace,
                Kind::ParamContainer,
                Kind::Less,
                Kind::ParamType,
                Kind::Greater,
                Kind::RParen,
                Kind::Whitespace,
                Kind::LBrace,
                Kind::Eof
            ]
        );
    }
}
