//! Block Kit rendering of the bot's [`Message`]s, from the message alone (and the knowledge base
//! version that decided it). Pure. Buttons are encoded by `buttons`, text made safe by `mrkdwn`.
//!
//! Every message gets a plain `text` fallback (notifications, screen readers). Text from users and from
//! the knowledge base is escaped (`&`, `<`, `>`), so `<!channel>` or `<@U..>` in a paste never become
//! live; only the links we build ourselves are Slack markup. Section text is split to at most
//! [`SECTION_CHARS`] characters and a message to at most [`MAX_BLOCKS`] blocks (more become more
//! messages). A question or a clarification is a message of its own, so a click can replace it in
//! place without touching the answer above it.

use slack_morphism::prelude::*;

use crate::dialogue::{Answer, Choice, Escalation, Guidance, Question, Reply};
use crate::kb::Link;
use crate::vocab::{Action, Message};

use super::buttons::encode_action;
use super::mrkdwn::{escape, first_chars, link, quote, split_text};

/// Slack rejects a section whose text is longer (`invalid_blocks`).
pub const SECTION_CHARS: usize = 3000;
/// Slack rejects a message with more blocks.
pub const MAX_BLOCKS: usize = 50;
/// Button label limit (plain text).
const BUTTON_CHARS: usize = 75;
/// How long the notification fallback may get.
const FALLBACK_CHARS: usize = 2900;
/// How much of a user's text we quote back.
const QUOTE_CHARS: usize = 500;
/// How many alternatives a "wrong topic?" row offers.
const WRONG_TOPIC_CHOICES: usize = 3;

const NO_MATCH: &str = "No runbook section fits that. I cover in-cluster networking on IKS and ROKS: Calico, load balancers, DNS, worker deploys, PD alerts, escalation. Try describing the symptom or paste the error; `/netrunbook help` lists the topics.";

/// One Slack message: the fallback text and the blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub blocks: Vec<SlackBlock>,
}

impl Rendered {
    pub(crate) fn content(&self) -> SlackMessageContent {
        SlackMessageContent::new()
            .with_text(self.text.clone())
            .with_blocks(self.blocks.clone())
    }
}

/// Set the first block's `block_id` to `id` (at most 255 characters, Slack's limit; ours are short).
pub(crate) fn mark(blocks: &mut [SlackBlock], id: &str) {
    let Some(first) = blocks.first_mut() else {
        return;
    };
    // every kind of block has a block_id; going through JSON sets it whatever the kind
    if let Ok(serde_json::Value::Object(mut v)) = serde_json::to_value(&*first) {
        v.insert(
            "block_id".into(),
            serde_json::Value::String(id.chars().take(255).collect()),
        );
        if let Ok(marked) = serde_json::from_value(serde_json::Value::Object(v)) {
            *first = marked;
        }
    }
}

/// A block's `block_id`, if it has one.
pub(crate) fn block_id(block: &SlackBlock) -> Option<String> {
    match serde_json::to_value(block).ok()?.get("block_id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn md(text: impl Into<String>) -> SlackBlockText {
    SlackBlockText::MarkDown(SlackBlockMarkDownText::new(text.into()))
}

/// Sections for `text`, split to the section limit.
fn sections(text: &str) -> Vec<SlackBlock> {
    split_text(text, SECTION_CHARS)
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| SlackSectionBlock::new().with_text(md(t)).into())
        .collect()
}

fn context(text: &str) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(SlackBlockMarkDownText::new(
        first_chars(text, SECTION_CHARS),
    ))])
    .into()
}

/// Collects the blocks of one Slack message and numbers its buttons.
struct Builder<'k> {
    /// The knowledge base version the replies were decided with, shown under answers.
    version: &'k str,
    messages: Vec<Rendered>,
    blocks: Vec<SlackBlock>,
    text: String,
    seq: usize,
    /// Buttons for the thread (false in private, ephemeral answers).
    interactive: bool,
}

impl<'k> Builder<'k> {
    fn new(version: &'k str, interactive: bool) -> Builder<'k> {
        Builder {
            version,
            messages: Vec::new(),
            blocks: Vec::new(),
            text: String::new(),
            seq: 0,
            interactive,
        }
    }

    fn fallback(&mut self, s: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(s);
    }

    fn button(&mut self, label: &str, action: &Action, primary: bool) -> SlackActionBlockElement {
        self.seq += 1;
        let (id, value) = encode_action(action, self.seq);
        let mut b = SlackBlockButtonElement::new(first_chars(label, BUTTON_CHARS).into())
            .with_action_id(SlackActionId(id))
            .with_value(value);
        if primary {
            b = b.with_style(SlackBlockButtonStyle::Primary);
        }
        SlackActionBlockElement::Button(b)
    }

    fn actions(&mut self, buttons: Vec<SlackActionBlockElement>) {
        // an actions block holds at most 25 elements
        for chunk in buttons.chunks(25) {
            self.blocks.push(SlackActionsBlock::new(chunk.to_vec()).into());
        }
    }

    fn feedback_row(&mut self, intent: &str) {
        if !self.interactive {
            return;
        }
        let buttons = vec![
            self.button("Escalate", &Action::Escalate, false),
            self.button(
                "👍 Helpful",
                &Action::Feedback {
                    intent: intent.to_string(),
                    helpful: true,
                },
                false,
            ),
            self.button(
                "👎 Not helpful",
                &Action::Feedback {
                    intent: intent.to_string(),
                    helpful: false,
                },
                false,
            ),
        ];
        self.actions(buttons);
    }

    /// End the current Slack message (with the knowledge-base footer).
    fn finish(&mut self) {
        if self.blocks.is_empty() {
            return;
        }
        self.blocks.push(context(&format!(
            "netrunbook · knowledge base `{}`",
            escape(self.version)
        )));
        let text = if self.text.trim().is_empty() {
            "netrunbook".to_string()
        } else {
            // the fallback is mrkdwn too: escape it, then cut where no entity breaks
            split_text(&escape(&self.text), FALLBACK_CHARS).swap_remove(0)
        };
        let mut blocks = std::mem::take(&mut self.blocks);
        // keep within the block limit: the footer goes with the last part
        while blocks.len() > MAX_BLOCKS {
            let rest = blocks.split_off(MAX_BLOCKS - 1);
            blocks.push(context("(continued below)"));
            self.messages.push(Rendered {
                text: text.clone(),
                blocks,
            });
            blocks = rest;
        }
        self.messages.push(Rendered { text, blocks });
        self.text.clear();
        self.seq = 0;
    }

    fn links(&mut self, title: &str, links: &[Link]) {
        if links.is_empty() {
            return;
        }
        let lines: Vec<String> = links
            .iter()
            .map(|l| format!("• {}", link(&l.resolved, &l.title)))
            .collect();
        self.blocks
            .extend(sections(&format!("*{title}*\n{}", lines.join("\n"))));
    }

    fn reply(&mut self, r: &Reply) {
        match r {
            Reply::Answer(a) => self.answer(a),
            Reply::Question(q) => self.question(q),
            Reply::Guidance(g) => self.guidance(g),
            Reply::Clarify { candidates } => self.clarify(candidates),
            Reply::NoMatch => {
                self.blocks.extend(sections(NO_MATCH));
                self.fallback("No runbook section fits that.");
            }
            Reply::Escalation(e) => self.escalation(e),
            Reply::Notice { text } => {
                self.blocks.extend(sections(&format!("_{}_", escape(text))));
                self.fallback(text);
            }
        }
    }

    fn answer(&mut self, a: &Answer) {
        self.blocks.extend(sections(&format!(
            "*{}*\n{}",
            link(&a.url, &a.heading),
            escape(a.summary.trim())
        )));
        self.fallback(&format!("{}: {}", a.heading, a.summary.trim()));
        let section = Link {
            title: format!("Runbook: {}", a.heading),
            url: a.url.clone(),
            resolved: a.url.clone(),
        };
        let links: Vec<Link> = std::iter::once(section).chain(a.links.iter().cloned()).collect();
        self.links("Links", &links);
        if !a.facts.is_empty() {
            let lines: Vec<String> = a
                .facts
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| {
                    let values: Vec<String> = v.iter().map(|x| escape(&first_chars(x, 300))).collect();
                    format!("*{}:* {}", escape(&k.replace('_', " ")), values.join(" · "))
                })
                .collect();
            if !lines.is_empty() {
                self.blocks
                    .extend(sections(&format!("*Key facts*\n{}", lines.join("\n"))));
            }
        }
        if !a.alternatives.is_empty() && self.interactive {
            self.blocks.push(context(
                "Wrong topic? Pick the right one and I will answer that instead:",
            ));
            let buttons: Vec<_> = a
                .alternatives
                .iter()
                .take(WRONG_TOPIC_CHOICES)
                .map(|c| {
                    let action = Action::WrongTopic {
                        from: a.intent.clone(),
                        to: c.id.clone(),
                    };
                    self.button(&c.label, &action, false)
                })
                .collect();
            self.actions(buttons);
        } else if !a.alternatives.is_empty() {
            let alts: Vec<String> = a.alternatives.iter().map(|c| escape(&c.label)).collect();
            self.blocks
                .push(context(&format!("Not quite it? Also possible: {}", alts.join(", "))));
        }
        self.feedback_row(&a.intent);
    }

    fn question(&mut self, q: &Question) {
        // a question is a message of its own, so a click can replace it
        self.finish();
        let mut text = String::new();
        match (&q.note, q.reask) {
            (Some(note), _) => text.push_str(&format!("{}\n", escape(note))),
            (None, true) => text.push_str("I could not tell the answer from that.\n"),
            (None, false) => {}
        }
        text.push_str(&format!("*{}*", escape(&q.text)));
        self.blocks.extend(sections(&text));
        self.fallback(&q.text);
        if self.interactive {
            // no option is styled as the expected one: the runbook does not prefer an answer
            let buttons: Vec<_> = q
                .options
                .iter()
                .map(|o| {
                    self.button(
                        &o.label,
                        &Action::Choose {
                            node: q.node.clone(),
                            option: o.id.clone(),
                        },
                        false,
                    )
                })
                .collect();
            self.actions(buttons);
            self.blocks
                .push(context("Click an answer, or reply in this thread in your own words."));
        } else {
            let list: Vec<String> = q.options.iter().map(|o| format!("• {}", escape(&o.label))).collect();
            self.blocks.extend(sections(&list.join("\n")));
        }
        self.finish();
    }

    fn clarify(&mut self, candidates: &[Choice]) {
        self.finish();
        self.blocks.extend(sections(
            "*That could be more than one runbook section. Which one did you mean?*",
        ));
        self.fallback("Which runbook section did you mean?");
        if self.interactive {
            let buttons: Vec<_> = candidates
                .iter()
                .map(|c| self.button(&c.label, &Action::Pick { intent: c.id.clone() }, false))
                .collect();
            self.actions(buttons);
        } else {
            let list: Vec<String> = candidates.iter().map(|c| format!("• {}", escape(&c.label))).collect();
            self.blocks.extend(sections(&list.join("\n")));
        }
        self.finish();
    }

    fn guidance(&mut self, g: &Guidance) {
        self.blocks.extend(sections(&escape(g.text.trim())));
        self.fallback(g.text.trim());
        if let Some(tip) = &g.tip {
            self.blocks.push(context(&format!(
                "Tip (ours, not the runbook's): {}",
                escape(tip.trim())
            )));
        }
        self.links("Links", &g.links);
        if g.end && !g.escalate {
            self.feedback_row(&g.intent);
        }
    }

    fn escalation(&mut self, e: &Escalation) {
        let mut text = format!("*Escalation: {}*\n{}", escape(&e.title), escape(e.summary.trim()));
        if let Some(t) = &e.topic {
            text.push_str(&format!("\n*Topic:* {}", escape(t)));
        }
        self.blocks.extend(sections(&text));
        self.fallback(&format!("Escalation: {}", e.title));
        self.links("Escalation path", &e.links);
        if !e.collected.is_empty() {
            let lines: Vec<String> = e
                .collected
                .iter()
                .map(|(q, a)| format!("• {} *{}*", escape(q), escape(a)))
                .collect();
            self.blocks
                .extend(sections(&format!("*What we know so far*\n{}", lines.join("\n"))));
        }
        if !e.origin.trim().is_empty() {
            self.blocks.extend(sections(&format!(
                "*Reported problem*\n{}",
                quote(&first_chars(e.origin.trim(), QUOTE_CHARS))
            )));
        }
    }
}

/// The Slack messages for `message`, decided with knowledge base `version`, in order (usually one; a
/// question adds one; very long content more). Everything shown comes from the message itself.
pub fn render(message: &Message, version: &str) -> Vec<Rendered> {
    let mut b = Builder::new(version, true);
    match message {
        Message::Replies(replies) => {
            for r in replies {
                b.reply(r);
            }
        }
        Message::Private { reply, more, share } => {
            b.interactive = false;
            b.reply(reply);
            b.interactive = true;
            if *more {
                b.blocks.push(context(
                    "This topic has follow-up questions: share it in the channel and I will walk through them in a thread.",
                ));
            }
            if let Some(q) = share {
                let button = b.button("Share in channel", &Action::Share { question: q.clone() }, true);
                b.actions(vec![button]);
            }
        }
        Message::Shared { user, question, reply } => {
            b.blocks.extend(sections(&format!(
                "<@{}> asked:\n{}",
                escape(user),
                quote(&first_chars(question.trim(), QUOTE_CHARS))
            )));
            b.reply(reply);
        }
        Message::Help { topics } => help(&mut b, topics),
        Message::Answered { question, choice, user } => {
            b.blocks.extend(sections(&format!("*{}*", escape(question))));
            b.blocks.push(context(&format!(
                "✅ *{}* (answered by <@{}>)",
                escape(choice),
                escape(user)
            )));
            b.fallback(&format!("{question} {choice}"));
        }
        Message::AskedBy { user } => {
            b.blocks.push(context(&format!(
                "🔎 <@{}> asked which runbook section fits this message.",
                escape(user)
            )));
            b.fallback("Asked which runbook section fits this message.");
        }
        Message::Refire { channel, first } => {
            // ids are Slack's (upper-case letters, digits, a dot): the link is ours
            let url = format!("https://slack.com/archives/{}/p{}", channel, first.replace('.', ""));
            b.blocks.push(context(&format!(
                "↩️ This alert fired again within the hour: see {} for the runbook section and the follow-up.",
                link(&url, "the first answer")
            )));
            b.fallback("This alert fired again within the hour: see the first answer.");
        }
        Message::Notice(text) => {
            b.blocks.extend(sections(&format!("_{}_", escape(text))));
            b.fallback(text);
        }
        Message::NotHere { channels } => {
            // channel ids are checked at start-up (upper-case letters and digits), so the links are safe
            let list: Vec<String> = channels.iter().map(|c| format!("<#{}>", escape(c))).collect();
            let text = if list.is_empty() {
                "I do not answer in this channel.".to_string()
            } else {
                format!("I do not answer in this channel. Ask me in {}.", list.join(", "))
            };
            b.blocks.extend(sections(&format!("_{text}_")));
            b.fallback("I do not answer in this channel.");
        }
        Message::Block { title, body } => {
            b.blocks.extend(sections(&format!("*{}*", escape(title))));
            // a code block per section, each within the section limit with its fences
            for piece in split_text(&escape(body), SECTION_CHARS - 8) {
                b.blocks.extend(sections(&format!("```{piece}```")));
            }
            b.fallback(title);
        }
    }
    b.finish();
    b.messages
}

fn help(b: &mut Builder<'_>, topics: &[(String, Vec<String>)]) {
    let mut text = String::from(
        "*netrunbook* points you at the right section of the armada-network troubleshooting runbook and walks through its follow-up questions.\nAsk with `/netrunbook <symptom or error>`, or mention me in an incident thread.\n",
    );
    for (group, titles) in topics {
        let titles: Vec<String> = titles.iter().map(|t| escape(t)).collect();
        text.push_str(&format!("\n*{}:* {}", escape(group), titles.join(" · ")));
    }
    b.blocks.extend(sections(&text));
    b.fallback("netrunbook topics");
}

#[cfg(test)]
mod tests {
    use super::super::buttons::*;
    use super::*;
    use crate::kb::KnowledgeBase;

    fn kb() -> KnowledgeBase {
        KnowledgeBase::builtin().expect("built-in knowledge base")
    }

    fn json(r: &[Rendered]) -> String {
        serde_json::to_string(&r.iter().map(|m| m.content()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn user_text_cannot_ping() {
        let kb = kb();
        let m = Message::Shared {
            user: "U1".into(),
            question: "<!channel> <@U999> help & <https://evil|x>".into(),
            reply: Reply::NoMatch,
        };
        let out = json(&render(&m, &kb.version));
        assert!(!out.contains("<!channel>"), "{out}");
        assert!(!out.contains("<@U999>"), "{out}");
        assert!(out.contains("&lt;!channel&gt;"), "{out}");
        assert!(out.contains("&amp;"), "{out}");
    }

    #[test]
    fn long_text_is_split_within_the_limits() {
        let kb = kb();
        let long = "word ".repeat(5000) + &"x".repeat(7000) + "\n<tail> & done";
        let m = Message::Replies(vec![
            Reply::Notice { text: long.clone() },
            Reply::Escalation(Escalation {
                title: "Escalation Policy".into(),
                summary: long.clone(),
                topic: Some("t".into()),
                links: vec![],
                facts: Default::default(),
                collected: vec![],
                origin: long,
            }),
        ]);
        let rendered = render(&m, &kb.version);
        for msg in &rendered {
            assert!(msg.blocks.len() <= MAX_BLOCKS);
            assert!(!msg.text.is_empty() && msg.text.chars().count() <= 3000);
            for b in &msg.blocks {
                if let SlackBlock::Section(s) = b {
                    let Some(SlackBlockText::MarkDown(t)) = &s.text else {
                        panic!()
                    };
                    assert!(t.text.chars().count() <= SECTION_CHARS);
                    assert!(!t.text.ends_with("&am"), "entity cut");
                }
            }
        }
    }

    #[test]
    fn many_blocks_become_several_messages() {
        let kb = kb();
        let replies: Vec<Reply> = (0..120).map(|i| Reply::Notice { text: format!("n{i}") }).collect();
        let rendered = render(&Message::Replies(replies), &kb.version);
        assert!(rendered.len() >= 3);
        assert!(rendered.iter().all(|m| m.blocks.len() <= MAX_BLOCKS));
    }

    #[test]
    fn actions_round_trip_within_limits() {
        let actions = [
            Action::Choose {
                node: "infra".into(),
                option: "vpc".into(),
            },
            Action::Pick { intent: "dns".into() },
            Action::Escalate,
            Action::Feedback {
                intent: "dns".into(),
                helpful: false,
            },
            Action::WrongTopic {
                from: "dns".into(),
                to: "calico".into(),
            },
            Action::Share {
                question: "\"quoted\" \u{0}".repeat(2000),
            },
        ];
        for a in actions {
            let (id, value) = encode_action(&a, 7);
            assert!(
                id.len() <= 255 && value.chars().count() <= VALUE_CHARS,
                "{id} {}",
                value.len()
            );
            let back = decode_action(&id, &value).expect("decodes");
            match (&a, &back) {
                (Action::Share { question }, Action::Share { question: q }) => {
                    assert!(question.starts_with(q.as_str()))
                }
                _ => assert_eq!(a, back),
            }
        }
        assert_eq!(decode_action("someone_else", "{}"), None);
    }

    #[test]
    fn a_question_is_a_message_of_its_own_with_buttons() {
        let kb = kb();
        let step = crate::dialogue::step(
            &kb,
            None,
            &crate::dialogue::Input::Message {
                text: "coredns lookups fail in pods".into(),
                addressed: true,
            },
            0,
        );
        let Some(Reply::Question(asked)) = step.replies.get(1).cloned() else {
            panic!("{:?}", step.replies)
        };
        let node = asked.node.clone();
        let rendered = render(&Message::Replies(step.replies), &kb.version);
        assert_eq!(rendered.len(), 2, "answer, then the question");
        let q = json(&rendered[1..]);
        assert!(q.contains(A_CHOOSE), "{q}");
        let a = json(&rendered[..1]);
        assert!(
            a.contains(A_ESCALATE) && a.contains(A_UP) && a.contains(&kb.version),
            "{a}"
        );
        // read back (as from a thread), the question names its node; the answer asks nothing
        let read_back = |r: &Rendered| -> Vec<SlackBlock> {
            serde_json::from_str(&serde_json::to_string(&r.blocks).unwrap()).unwrap()
        };
        assert_eq!(question_nodes(&read_back(&rendered[1])), [node]);
        assert!(question_nodes(&read_back(&rendered[0])).is_empty());
        let answered = render(
            &Message::Answered {
                question: asked.text.clone(),
                choice: "Classic".into(),
                user: "U1".into(),
            },
            &kb.version,
        );
        assert!(
            question_nodes(&answered[0].blocks).is_empty(),
            "an answered question has no buttons"
        );
    }
}
