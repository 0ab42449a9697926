//! An alert by another app in a channel opted in (see [`crate::alert`]): matched once, answered in
//! its thread only when the match is confident, a re-fire pointed to the first answer, a storm held
//! back. The thread then works like a mention's.

use tracing::info;

use crate::alert::{self, Admit};
use crate::dialogue;
use crate::kb::KnowledgeBase;
use crate::store::Store;
use crate::vocab::{Inbound, Message, Outbound, ThreadKey};

use super::{reply_in, Bot, Effects};

impl<S: Store> Bot<S> {
    pub(super) fn alert(
        &self,
        kb: &KnowledgeBase,
        key: &ThreadKey,
        inbound: &Inbound,
        now: u64,
        fx: &mut Effects,
    ) -> Vec<Outbound> {
        self.metrics.alert("seen", None);
        let outcome = kb.match_text(&inbound.text);
        let Some(best) = alert::confident(kb, &outcome) else {
            self.metrics.alert("skipped_low_confidence", None);
            info!(
                kind = "alert",
                outcome = "skipped_low_confidence",
                score = outcome.ranked.first().map(|r| r.score),
                "handled"
            );
            return vec![];
        };
        let intent = kb.intents[best].id.as_str();
        let fingerprint = alert::fingerprint(&inbound.text);
        let admit = self.gate.lock().unwrap_or_else(|e| e.into_inner()).admit(
            &self.alerts,
            &inbound.channel,
            &fingerprint,
            &inbound.ts,
            now,
        );
        match admit {
            Admit::Answer => {
                self.metrics.alert("answered", Some(intent));
                let step = dialogue::start_matched(kb, &inbound.text, outcome, now);
                fx.alert = true;
                self.settle(kb, None, &step, Some(&inbound.text), now, fx);
                vec![reply_in(inbound, key, Message::Replies(step.replies))]
            }
            Admit::Pointer { first } => {
                self.metrics.alert("skipped_refire", Some(intent));
                info!(kind = "alert", outcome = "skipped_refire", intent, "handled");
                let channel = inbound.channel.clone();
                vec![reply_in(inbound, key, Message::Refire { channel, first })]
            }
            Admit::HoldBack => {
                self.metrics.alert("skipped_limit", Some(intent));
                info!(
                    kind = "alert",
                    outcome = "skipped_limit",
                    intent,
                    "holding back: too many alerts in this channel"
                );
                vec![reply_in(
                    inbound,
                    key,
                    Message::Notice(format!(
                        "Many alerts in this channel in the last {} minutes: I am holding back until it calms down. Mention me in an alert's thread to ask about it.",
                        self.alerts.window_secs / 60
                    )),
                )]
            }
            Admit::Silent => {
                self.metrics.alert("skipped_limit", Some(intent));
                vec![]
            }
        }
    }
}
