//! Hot reload: watch the config path (the `notify` crate), collect bursts
//! of changes for a debounce period, then reload once. A config that fails
//! to load is logged and recorded; the last good one stays.
//!
//! A file is watched through its directory (editors replace files by
//! renaming, which a watch on the file itself would miss); a directory is
//! watched recursively.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Base, Core, pipeline};

/// Keeps the file watch alive; dropping it stops watching.
pub(crate) struct Watcher(#[allow(dead_code)] RecommendedWatcher);

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

/// Starts watching `path`; the task reloads into `core` after each burst
/// of changes.
pub(crate) fn watch(
    path: PathBuf,
    debounce: Duration,
    core: Arc<Core>,
) -> Result<(Watcher, JoinHandle<()>), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let file = (!path.is_dir()).then(|| path.clone());
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if relevant(&e, file.as_deref()) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("config watch error: {e}"),
        })
        .map_err(|e| e.to_string())?;
    let (target, mode) = watch_target(&path);
    watcher
        .watch(&target, mode)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    let task = tokio::spawn(reload_loop(path, debounce, rx, core));
    Ok((Watcher(watcher), task))
}

/// Whether an event can change the config: content changes (not reads or
/// metadata) of YAML files (or of the one watched file), and directories
/// appearing or going. Other files next to the config (logs, editor swap
/// files) are ignored, so writing them cannot trigger reload loops.
fn relevant(e: &notify::Event, file: Option<&Path>) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    if matches!(
        e.kind,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
    ) {
        return false;
    }
    e.paths.iter().any(|p| match file {
        Some(f) => p.file_name() == f.file_name(),
        None => match p.extension().and_then(|x| x.to_str()) {
            Some(x) => x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml"),
            None => matches!(e.kind, EventKind::Create(_) | EventKind::Remove(_)),
        },
    })
}

fn watch_target(path: &Path) -> (PathBuf, RecursiveMode) {
    if path.is_dir() {
        return (path.to_owned(), RecursiveMode::Recursive);
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    (parent.to_owned(), RecursiveMode::NonRecursive)
}

async fn reload_loop(
    path: PathBuf,
    debounce: Duration,
    mut events: mpsc::UnboundedReceiver<()>,
    core: Arc<Core>,
) {
    while events.recv().await.is_some() {
        // Collect the rest of the burst (an editor's save is several
        // events; a `cp -r` many).
        loop {
            match tokio::time::timeout(debounce, events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        tracing::info!(path = %path.display(), "config changed; reloading");
        match pipeline::load_path(&path) {
            Ok(loaded) => core.install(Base::Model(loaded.model), &loaded.warnings),
            Err(e) => core.fail(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, DataChange, MetadataKind, ModifyKind};
    use notify::{Event, EventKind};

    use super::*;

    fn ev(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_yaml_content_changes_count() {
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(relevant(&ev(write, "/c/mesh.yaml"), None));
        assert!(relevant(&ev(write, "/c/sub/x.YML"), None));
        assert!(!relevant(&ev(write, "/c/out.log"), None));
        assert!(!relevant(
            &ev(EventKind::Access(AccessKind::Any), "/c/mesh.yaml"),
            None
        ));
        let attrib = EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime));
        assert!(!relevant(&ev(attrib, "/c/mesh.yaml"), None));
        assert!(relevant(
            &ev(EventKind::Create(CreateKind::Folder), "/c/new"),
            None
        ));
        let file = Path::new("/c/mesh.yaml");
        assert!(relevant(&ev(write, "/c/mesh.yaml"), Some(file)));
        assert!(!relevant(&ev(write, "/c/other.yaml"), Some(file)));
    }
}
