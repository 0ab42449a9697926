//! The knowledge base a running bot answers from, replaceable while it runs: [`LiveKb::get`] hands out
//! the current one, [`LiveKb::reload`] re-reads the intents directory and swaps a valid result in
//! whole. Whoever holds an `Arc` from before keeps a complete, consistent knowledge base until it lets
//! go, so a reply is always built from one version.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{KbError, KnowledgeBase, LoadOptions};

/// Why a reload did not happen. The knowledge base in use stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the built-in knowledge base cannot be reloaded: start netrunbook with --intents DIR (or NETRUNBOOK_INTENTS) to reload from a directory")]
    BuiltIn,
    #[error("the knowledge base in {} is not valid; keeping version {kept}", dir.display())]
    Invalid {
        dir: PathBuf,
        kept: String,
        #[source]
        source: KbError,
    },
}

/// What a successful reload replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub from: String,
    pub to: String,
    pub intents: usize,
    /// Headings of the sections the old knowledge base had and the new one has not: threads about
    /// them start over at their next message.
    pub dropped: Vec<String>,
}

/// The current knowledge base and where to reload it from.
#[derive(Debug)]
pub struct LiveKb {
    current: RwLock<Arc<KnowledgeBase>>,
    /// `None` for the built-in knowledge base, which is compiled in and cannot change.
    dir: Option<(PathBuf, LoadOptions)>,
}

impl From<Arc<KnowledgeBase>> for LiveKb {
    /// A fixed knowledge base (reloading it is refused).
    fn from(kb: Arc<KnowledgeBase>) -> LiveKb {
        LiveKb {
            current: RwLock::new(kb),
            dir: None,
        }
    }
}

impl LiveKb {
    /// `kb`, loaded from `dir` with `opts`, and reloaded from there on request.
    pub(crate) fn from_dir(kb: KnowledgeBase, dir: PathBuf, opts: LoadOptions) -> LiveKb {
        LiveKb {
            current: RwLock::new(Arc::new(kb)),
            dir: Some((dir, opts)),
        }
    }

    /// The knowledge base in use now.
    pub(crate) fn get(&self) -> Arc<KnowledgeBase> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The directory reloads read, if any.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|(d, _)| d.as_path())
    }

    /// Re-read and validate the directory; swap the result in when it is valid. Blocking (reads
    /// files, compiles the matcher).
    pub(crate) fn reload(&self) -> Result<Reloaded, ReloadError> {
        let Some((dir, opts)) = &self.dir else {
            return Err(ReloadError::BuiltIn);
        };
        let old = self.get();
        let from = old.version.clone();
        let kb = KnowledgeBase::load_dir(dir, opts).map_err(|source| ReloadError::Invalid {
            dir: dir.clone(),
            kept: from.clone(),
            source,
        })?;
        let done = Reloaded {
            from,
            to: kb.version.clone(),
            intents: kb.intents.len(),
            dropped: old
                .intents
                .iter()
                .filter(|i| kb.intent(&i.id).is_none())
                .map(|i| i.heading.clone())
                .collect(),
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(kb);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_knowledge_base_is_not_reloaded() {
        let live = LiveKb::from(Arc::new(KnowledgeBase::builtin().unwrap()));
        let before = live.get();
        assert!(matches!(live.reload(), Err(ReloadError::BuiltIn)));
        assert!(Arc::ptr_eq(&before, &live.get()));
    }

    #[test]
    fn a_reload_names_the_sections_it_drops() {
        let dir = tempfile::tempdir().unwrap();
        let intents = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
        for entry in std::fs::read_dir(&intents).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let opts = LoadOptions::default();
        let kb = KnowledgeBase::load_dir(dir.path(), &opts).unwrap();
        let live = LiveKb::from_dir(kb, dir.path().to_path_buf(), opts);
        assert_eq!(live.reload().unwrap().dropped, Vec::<String>::new());
        std::fs::remove_file(dir.path().join("dns.yaml")).unwrap();
        let r = live.reload().unwrap();
        assert_eq!(r.dropped, ["Customer Reports DNS Issues"]);
    }
}
