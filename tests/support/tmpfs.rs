//! A small tmpfs the test mounts (root required: without it the test fails, never skips), to
//! fill a real disk under a sink or the journal.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test, unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount (this test needs root and mount(8))");
        assert!(
            out.status.success(),
            "mount -t tmpfs failed (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_path_buf())
    }

    /// Writes zeros into `name` until the file system is full.
    pub fn fill(&self, name: &str) -> u64 {
        let mut f = std::fs::File::create(self.0.join(name)).unwrap();
        let chunk = vec![0u8; 4096];
        let mut n = 0;
        while f.write_all(&chunk).is_ok() {
            n += chunk.len() as u64;
        }
        let _ = f.sync_all();
        n
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
