//! Exclusive lock of a PKI directory, so two `palisade pki` commands running
//! at once cannot both read the inventory, each add an entry, and have the
//! second save drop the first one's certificate.
//!
//! The lock is an advisory `flock` on `DIR/.lock` (via rustix):
//! the kernel releases it when the holder exits or crashes, so there are no
//! stale lock files to clean up. The file itself is never deleted (deleting a
//! locked file lets a third process lock a new inode while the first still
//! holds the old one).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Error;

/// Longest wait for another command to release the PKI lock: 60 s. A command
/// behind a stuck one fails with a clear error instead of hanging forever.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between two attempts to take the lock: 20 ms.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Name of the lock file inside the PKI directory.
pub const LOCK_FILE: &str = ".lock";

/// Holds the directory's lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    // The lock lives as long as this open file description.
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, waiting up to `timeout` for another holder.
    pub(crate) fn acquire(dir: &Path, timeout: Duration) -> Result<DirLock, Error> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open the lock {}", path.display()), e))?;
        let deadline = Instant::now() + timeout;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Invalid(format!(
                            "{} is locked by another palisade pki command (waited {} s)",
                            dir.display(),
                            timeout.as_secs()
                        )));
                    }
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot lock {}", path.display()),
                        std::io::Error::from(e),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_times_out_and_gets_it_after_release() {
        let dir = std::env::temp_dir().join(format!("pki-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DirLock::acquire(&dir, Duration::from_secs(1)).unwrap();
        let t = Instant::now();
        let e = DirLock::acquire(&dir, Duration::from_millis(200)).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert!(e.to_string().contains("locked by another"), "{e}");
        drop(first);
        let again = DirLock::acquire(&dir, Duration::from_millis(200));
        assert!(again.is_ok());
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
