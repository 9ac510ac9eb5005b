//! Calico's label selector language, as `nodeSelector` and `peerSelector`
//! use it.
//!
//! Grammar, loosest binding first:
//!
//! ```text
//! or      := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | primary
//! primary := "(" or ")" | "all()" | "global()" | "has(" label ")"
//!          | label ( "==" | "!=" | "contains" | "starts with" | "ends with" ) string
//!          | label ( "in" | "not in" ) "{" [ string ( "," string )* [","] ] "}"
//! ```
//!
//! Whitespace is space and tab only. Strings are quoted with `'` or `"` and
//! have no escapes. Two-word operators may be written without the space
//! (`startswith`, `notin`), as Calico's tokenizer allows. An empty selector
//! selects everything.

use std::collections::BTreeMap;
use std::fmt;

/// The longest label name Calico accepts.
const MAX_LABEL: usize = 512;

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `all()` and `global()`: every set of labels.
    All,
    Has(String),
    Equal(String, String),
    NotEqual(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Selector>),
    And(Vec<Selector>),
    Or(Vec<Selector>),
}

/// Why a selector does not parse: what was expected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    /// Byte offset into the selector text.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

impl std::error::Error for SelectorError {}

impl Selector {
    /// Parse selector text.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser { text, pos: 0 };
        parser.skip_space();
        if parser.at_end() {
            return Ok(Selector::All);
        }
        let selector = parser.or()?;
        parser.skip_space();
        if !parser.at_end() {
            return Err(parser.error("unexpected text after the selector"));
        }
        Ok(selector)
    }

    /// Whether a set of labels matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &str| labels.get(k).map(String::as_str);
        match self {
            Selector::All => true,
            Selector::Has(k) => labels.contains_key(k),
            Selector::Equal(k, v) => get(k) == Some(v),
            Selector::NotEqual(k, v) => get(k) != Some(v),
            Selector::In(k, set) => get(k).is_some_and(|x| set.iter().any(|v| v == x)),
            Selector::NotIn(k, set) => !get(k).is_some_and(|x| set.iter().any(|v| v == x)),
            Selector::Contains(k, s) => get(k).is_some_and(|x| x.contains(s.as_str())),
            Selector::StartsWith(k, s) => get(k).is_some_and(|x| x.starts_with(s.as_str())),
            Selector::EndsWith(k, s) => get(k).is_some_and(|x| x.ends_with(s.as_str())),
            Selector::Not(inner) => !inner.matches(labels),
            Selector::And(all) => all.iter().all(|s| s.matches(labels)),
            Selector::Or(any) => any.iter().any(|s| s.matches(labels)),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-')
}

impl Parser<'_> {
    fn rest(&self) -> &[u8] {
        &self.text.as_bytes()[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn error(&self, message: &str) -> SelectorError {
        SelectorError {
            position: self.pos,
            message: message.to_owned(),
        }
    }

    fn skip_space(&mut self) {
        while matches!(self.rest().first(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Consume `token` (after optional whitespace) if it comes next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token.as_bytes()) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// Consume a keyword that must end at a word boundary. Two-word
    /// keywords accept any (or no) whitespace between the words.
    fn eat_keyword(&mut self, words: &[&str]) -> bool {
        let start = self.pos;
        for word in words {
            self.skip_space();
            if !self.rest().starts_with(word.as_bytes()) {
                self.pos = start;
                return false;
            }
            self.pos += word.len();
        }
        if self.rest().first().is_some_and(|&c| is_label_char(c)) {
            self.pos = start;
            return false;
        }
        true
    }

    fn or(&mut self) -> Result<Selector, SelectorError> {
        let mut terms = vec![self.and()?];
        while self.eat("||") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Selector::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Selector, SelectorError> {
        let mut terms = vec![self.unary()?];
        while self.eat("&&") {
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Selector::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Selector, SelectorError> {
        self.skip_space();
        // `!=` never starts an expression, so a `!` here is negation.
        if self.eat("!") {
            return Ok(match self.unary()? {
                Selector::Not(inner) => *inner,
                other => Selector::Not(Box::new(other)),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Selector, SelectorError> {
        self.skip_space();
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
            return Ok(inner);
        }
        for function in ["all", "global"] {
            if self.rest().starts_with(format!("{function}(").as_bytes()) {
                self.pos += function.len() + 1;
                if !self.eat(")") {
                    return Err(self.error(&format!("expected ')' after '{function}('")));
                }
                return Ok(Selector::All);
            }
        }
        if self.rest().starts_with(b"has(") {
            self.pos += 4;
            let label = self.label()?;
            if !self.eat(")") {
                return Err(self.error("expected ')' after the label in has()"));
            }
            return Ok(Selector::Has(label));
        }
        let label = self.label()?;
        self.skip_space();
        if self.eat("==") {
            return Ok(Selector::Equal(label, self.string()?));
        }
        if self.eat("!=") {
            return Ok(Selector::NotEqual(label, self.string()?));
        }
        if self.eat_keyword(&["contains"]) {
            return Ok(Selector::Contains(label, self.string()?));
        }
        if self.eat_keyword(&["starts", "with"]) {
            return Ok(Selector::StartsWith(label, self.string()?));
        }
        if self.eat_keyword(&["ends", "with"]) {
            return Ok(Selector::EndsWith(label, self.string()?));
        }
        if self.eat_keyword(&["not", "in"]) {
            return Ok(Selector::NotIn(label, self.set()?));
        }
        if self.eat_keyword(&["in"]) {
            return Ok(Selector::In(label, self.set()?));
        }
        Err(self
            .error("expected an operator (==, !=, in, not in, contains, starts with, ends with)"))
    }

    fn label(&mut self) -> Result<String, SelectorError> {
        self.skip_space();
        let len = self
            .rest()
            .iter()
            .take_while(|&&c| is_label_char(c))
            .count();
        if len == 0 {
            return Err(self.error("expected a label name"));
        }
        if len > MAX_LABEL {
            return Err(self.error("label name longer than 512 characters"));
        }
        let label = self.text[self.pos..self.pos + len].to_owned();
        self.pos += len;
        Ok(label)
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        self.skip_space();
        let quote = match self.rest().first() {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(self.error("expected string")),
        };
        let body = &self.rest()[1..];
        let Some(len) = body.iter().position(|&c| c == quote) else {
            return Err(self.error("unterminated string"));
        };
        let value = self.text[self.pos + 1..self.pos + 1 + len].to_owned();
        self.pos += len + 2;
        Ok(value)
    }

    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        if !self.eat("{") {
            return Err(self.error("expected '{'"));
        }
        let mut values = Vec::new();
        loop {
            if self.eat("}") {
                return Ok(values);
            }
            values.push(self.string()?);
            if self.eat("}") {
                return Ok(values);
            }
            if !self.eat(",") {
                return Err(self.error("expected ',' or '}'"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The node labels of calico-model.md §3.3.
    fn nodes() -> Vec<(&'static str, BTreeMap<String, String>)> {
        vec![
            (
                "n1",
                labels(&[("rack", "r1"), ("role", "worker"), ("zone", "us-east-1a")]),
            ),
            (
                "n2",
                labels(&[
                    ("rack", "r2"),
                    ("role", "worker"),
                    ("zone", "us-east-1b"),
                    ("gpu", ""),
                ]),
            ),
            (
                "n3",
                labels(&[
                    ("rack", "r1"),
                    ("role", "rr"),
                    ("route-reflector", "true"),
                    ("zone", "us-west-2a"),
                    ("kubernetes.io/hostname", "n3"),
                ]),
            ),
            ("n4", labels(&[])),
        ]
    }

    fn selected(selector: &str) -> Vec<&'static str> {
        let s = Selector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        nodes()
            .into_iter()
            .filter(|(_, l)| s.matches(l))
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn every_example_of_the_model_selects_what_calico_selects() {
        let cases: &[(&str, &[&str])] = &[
            ("all()", &["n1", "n2", "n3", "n4"]),
            ("", &["n1", "n2", "n3", "n4"]),
            ("rack == 'r1'", &["n1", "n3"]),
            ("rack != 'r1'", &["n2", "n4"]),
            ("rack in {'r1', \"r2\"}", &["n1", "n2", "n3"]),
            ("rack not in {'r1'}", &["n2", "n4"]),
            ("has(gpu)", &["n2"]),
            ("!has(route-reflector)", &["n1", "n2", "n4"]),
            ("zone starts with 'us-east'", &["n1", "n2"]),
            ("zone ends with '-2a'", &["n3"]),
            ("zone contains 'west'", &["n3"]),
            ("role == 'worker' && rack == 'r2'", &["n2"]),
            ("route-reflector == 'true' || rack == 'r2'", &["n2", "n3"]),
            ("!(rack == 'r1' || has(gpu))", &["n4"]),
            (
                "!has(zone) || zone starts with 'us-east' && role in {'worker'}",
                &["n1", "n2", "n4"],
            ),
            ("global()", &["n1", "n2", "n3", "n4"]),
            ("kubernetes.io/hostname == 'n3'", &["n3"]),
        ];
        for (selector, want) in cases {
            assert_eq!(selected(selector), *want, "{selector}");
        }
    }

    #[test]
    fn operator_spellings_and_whitespace() {
        let cases: &[(&str, &[&str])] = &[
            ("zone startswith 'us-east'", &["n1", "n2"]),
            ("zone endswith'-2a'", &["n3"]),
            ("rack notin {'r1'}", &["n2", "n4"]),
            ("rack\tin\t{'r1',}", &["n1", "n3"]),
            ("rack in {}", &[]),
            ("rack not in {}", &["n1", "n2", "n3", "n4"]),
            ("has( gpu )", &["n2"]),
            ("all( )", &["n1", "n2", "n3", "n4"]),
            ("!!has(gpu)", &["n2"]),
            ("!!!has(gpu)", &["n1", "n3", "n4"]),
            ("  rack=='r1'  ", &["n1", "n3"]),
            ("role == \"it's\"", &[]),
            ("(rack == 'r1') && (role == 'rr')", &["n3"]),
            (
                "rack == 'r1' || rack == 'r2' && role == 'rr'",
                &["n1", "n3"],
            ),
            ("(rack == 'r1' || rack == 'r2') && role == 'rr'", &["n3"]),
        ];
        for (selector, want) in cases {
            assert_eq!(selected(selector), *want, "{selector}");
        }
        // A label called like a keyword is still a label.
        let s = Selector::parse("in == 'x'").expect("label named in");
        assert_eq!(s, Selector::Equal("in".into(), "x".into()));
        let s = Selector::parse("rack inside == 'x'");
        assert!(s.is_err(), "keyword must end at a word boundary");
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        let cases: &[(&str, &str)] = &[
            ("rack == r1", "expected string at position 8"),
            ("rack = 'r1'", "expected an operator"),
            ("has(rack", "expected ')' after the label in has()"),
            ("rack in ('a')", "expected '{'"),
            ("a & b", "expected an operator"),
            ("a == 'x' & b == 'y'", "unexpected text"),
            ("a == 'x' | b == 'y'", "unexpected text"),
            ("rack == 'r1", "unterminated string"),
            ("(rack == 'r1'", "expected ')'"),
            ("rack in {'a' 'b'}", "expected ',' or '}'"),
            ("== 'x'", "expected a label name"),
            ("rack == 'r1' &&", "expected a label name"),
            ("rack\n== 'r1'", "expected an operator"),
            ("all(x)", "expected ')' after 'all('"),
        ];
        for (selector, want) in cases {
            let err = Selector::parse(selector).expect_err(selector);
            assert!(
                err.to_string().contains(want),
                "{selector}: got {err}, want {want}"
            );
        }
        let long = format!("{} == 'x'", "a".repeat(513));
        assert!(Selector::parse(&long).is_err());
        let ok = format!("{} == 'x'", "a".repeat(512));
        assert!(Selector::parse(&ok).is_ok());
    }
}
