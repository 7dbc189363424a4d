//! A server run under `valgrind --tool=callgrind`, its instruction counts
//! dumped by label into a folder of the run's own: the same figures every
//! run, where CPU time varies by several per cent (BENCHMARKS.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct Callgrind {
    dir: PathBuf,
}

impl Callgrind {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        Self { dir: dir.to_path_buf() }
    }

    /// A script that runs `server` under callgrind, to start in its place.
    pub fn wrapper(&self, server: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join("server-under-callgrind.sh");
        let script = format!(
            "#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={}/callgrind.out.%p {} \"$@\"\n",
            self.dir.display(),
            server.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Writes the counts since the last dump under `label` (and zeroes them).
    pub fn dump(&self, pid: u32, label: &str) {
        let status = std::process::Command::new("callgrind_control")
            .arg("--dump")
            .arg(label)
            .arg(pid.to_string())
            .output()
            .expect("callgrind_control (valgrind) is needed for --callgrind");
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    }

    /// The instructions of process `pid`, summed over its dumps by label.
    pub fn totals(&self, pid: u32) -> HashMap<String, u64> {
        let mut by_label = HashMap::<String, u64>::new();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            let is_ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("callgrind.out.{pid}.")));
            if !is_ours {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let label = text.lines().find_map(|l| l.strip_prefix("desc: Trigger: dump "));
            let total = text
                .lines()
                .find_map(|l| l.strip_prefix("summary: ")?.trim().parse::<u64>().ok());
            if let (Some(label), Some(total)) = (label, total) {
                *by_label.entry(label.trim().to_string()).or_default() += total;
            }
        }
        by_label
    }
}
