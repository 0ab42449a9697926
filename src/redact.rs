//! Secrets people paste, taken out of text before any of it is kept: [`redact`]. Pure; a leaf, so
//! every layer that keeps user text (the conversation's first message, the report's excerpts) can
//! use it.

use std::sync::LazyLock;

use regex::Regex;

struct Rule {
    re: Regex,
    with: &'static str,
}

fn rule(pattern: &str, with: &'static str) -> Rule {
    Rule {
        re: Regex::new(pattern).expect("redaction patterns are valid"),
        with,
    }
}

/// Secrets people paste, in the order they are removed (an `Authorization` header before the
/// `Bearer` inside it, tokens before the `token=` around them).
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|\z)",
            "[REDACTED private key]",
        ),
        rule(
            r#"(?i)\b(authorization|proxy-authorization)(["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token|digest)\s+)?[^\s"',;]+"#,
            "${1}${2}[REDACTED]",
        ),
        rule(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]+", "Bearer [REDACTED]"),
        rule(r"\bxox[a-z]-[A-Za-z0-9\-]+", "[REDACTED]"),
        rule(r"\bxapp-[A-Za-z0-9\-]+", "[REDACTED]"),
        rule(
            r#"(?i)\b(password|passwd|pwd|passphrase|secret|client[_-]?secret|token|access[_-]?token|api[_-]?key|apikey|access[_-]?key)(["']?\s*[:=]\s*["']?)[^\s"',;&]+"#,
            "${1}${2}[REDACTED]",
        ),
        rule(
            r"(?i)\b(apikey|api[_-]?key)(\s+)[A-Za-z0-9_\-]{16,}",
            "${1}${2}[REDACTED]",
        ),
        rule(
            r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
            "[REDACTED]",
        ),
        rule(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/:@]+:[^\s/@]+@", "${1}[REDACTED]@"),
    ]
});

/// `text` with the secrets people paste replaced by `[REDACTED]`: Slack tokens (`xox?-`, `xapp-`),
/// `Bearer` tokens, `Authorization:` headers, `password=`/`passwd:`/`token=`/`secret=`/`apikey`
/// values, JWTs, private keys and credentials in URLs.
pub(crate) fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for r in RULES.iter() {
        if let std::borrow::Cow::Owned(s) = r.re.replace_all(&out, r.with) {
            out = s;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let cases = [
            ("token xoxb-1234-5678-abcdEFGH here", "token [REDACTED] here"),
            ("xoxp-1-2-3 and xapp-1-A0-99-abc", "[REDACTED] and [REDACTED]"),
            (
                "curl -H 'Authorization: Bearer abc.def'",
                "curl -H 'Authorization: [REDACTED]'",
            ),
            ("authorization=Basic dXNlcjpwYXNz end", "authorization=[REDACTED] end"),
            ("got Bearer eyJhbGciOi.x.y back", "got Bearer [REDACTED] back"),
            ("password=hunter2 user=bob", "password=[REDACTED] user=bob"),
            ("passwd: s3cr3t", "passwd: [REDACTED]"),
            ("token=abc123&x=1", "token=[REDACTED]&x=1"),
            ("\"apikey\": \"AbCdEf0123456789xyz\"", "\"apikey\": \"[REDACTED]\""),
            (
                "ibmcloud login --apikey AbCdEf0123456789xyzXYZ",
                "ibmcloud login --apikey [REDACTED]",
            ),
            (
                "https://admin:pa55@registry.example.com/x",
                "https://[REDACTED]@registry.example.com/x",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- ok",
                "[REDACTED private key] ok",
            ),
            ("the token expired again", "the token expired again"),
            ("LoadBalancer pending 25 min", "LoadBalancer pending 25 min"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }
}
