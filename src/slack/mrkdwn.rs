//! mrkdwn, Slack's markup, made safe: user and knowledge-base text escaped so nothing in it becomes
//! markup (`<!channel>`, `<@U..>`), links built by us, text shortened or split within Slack's limits
//! without cutting an entity or a link in two. Pure.

/// Escape text for mrkdwn: `&`, `<` and `>` become entities, so nothing in it is Slack markup.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // control characters (binary pastes) would only garble the message
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A Slack link `<url|title>` with both parts made safe.
pub(crate) fn link(url: &str, title: &str) -> String {
    let url: String = url
        .chars()
        .map(|c| match c {
            '|' => "%7C".to_string(),
            '<' => "%3C".to_string(),
            '>' => "%3E".to_string(),
            '&' => "&amp;".to_string(),
            c if c.is_whitespace() => "%20".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("<{url}|{}>", escape(title).replace('|', "¦"))
}

pub(crate) fn first_chars(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Split mrkdwn into pieces of at most `max` characters: at line ends where possible, then at spaces,
/// never inside an `&..;` entity or one of our `<..>` links.
pub(crate) fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest: &str = text;
    while rest.chars().count() > max {
        // byte offset of the max-th char
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let mut cut = window
            .rfind('\n')
            .filter(|&i| i > limit / 2)
            .or_else(|| window.rfind(' ').filter(|&i| i > limit / 2))
            .unwrap_or(limit);
        // do not cut an entity or a link in two
        if let Some(amp) = window[..cut].rfind('&') {
            if !window[amp..cut].contains(';') && cut - amp < 6 {
                cut = amp;
            }
        }
        if let Some(open) = window[..cut].rfind('<') {
            if !window[open..cut].contains('>') && open > 0 {
                cut = open;
            }
        }
        if cut == 0 {
            cut = limit;
        }
        pieces.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start_matches('\n');
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest.to_string());
    }
    pieces
}

/// User text as a mrkdwn quote, escaped.
pub(crate) fn quote(s: &str) -> String {
    s.lines()
        .map(|l| format!(">{}", escape(l)))
        .collect::<Vec<_>>()
        .join("\n")
}
