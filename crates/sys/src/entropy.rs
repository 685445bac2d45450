//! Random bytes, the saved random seed, and atomic small-file writes.
//!
//! The seed is mixed into the kernel pool by writing it to `/dev/urandom`, which adds it without
//! crediting entropy (random(4)): a seed copied with a disk image must never be counted as
//! secret. Right after use the file is overwritten with fresh bytes, so a crash before the
//! shutdown save can never feed the same seed twice.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Size of the saved seed: 512 bytes, the kernel's input pool size in bits divided by 8.
pub const SEED_LEN: usize = 512;

/// An entropy or atomic-write step failed.
#[derive(Debug, thiserror::Error)]
pub enum EntropyError {
    /// getrandom(2) (and the `/dev/urandom` fallback) failed.
    #[error("get random bytes")]
    Random(#[source] io::Error),
    /// The seed file could not be read.
    #[error("read {path}")]
    ReadSeed {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing into the kernel pool failed.
    #[error("write seed into {path}")]
    Feed {
        /// Usually `/dev/urandom`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing a file atomically failed.
    #[error("write {path}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Fills `buf` with bytes from the kernel's CSPRNG (getrandom(2), blocking only until the pool
/// is initialised, which modern kernels do early in boot).
pub fn fill_random(buf: &mut [u8]) -> Result<(), EntropyError> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or(&mut []);
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes for the whole call;
        // getrandom writes at most that many bytes into it.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOSYS) => return fill_from_urandom(buf).map_err(EntropyError::Random),
                _ => return Err(EntropyError::Random(err)),
            }
        }
        done += n as usize;
    }
    Ok(())
}

fn fill_from_urandom(buf: &mut [u8]) -> io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// Writes `data` to `path` so that readers see either the old or the new content, never a mix:
/// a temporary file next to it (mode `mode`), fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), EntropyError> {
    let err = |source| EntropyError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".dynamod-tmp");
    let tmp = dir.join(tmp_name);
    // A leftover from a crash would make create_new fail.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Saves [`SEED_LEN`] fresh random bytes to `seed_path` (mode 0600), creating its directory
/// (mode 0755) when missing.
pub fn save_seed(seed_path: &Path) -> Result<(), EntropyError> {
    if let Some(dir) = seed_path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| EntropyError::Write {
                path: seed_path.to_owned(),
                source,
            })?;
    }
    let mut seed = [0u8; SEED_LEN];
    fill_random(&mut seed)?;
    write_atomic(seed_path, &seed, 0o600)
}

/// What [`load_seed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedOutcome {
    /// This many bytes were fed to the pool and the file was refreshed.
    Loaded(usize),
    /// There was no seed file (first boot); a fresh one was saved.
    NoSeed,
}

/// Feeds the seed at `seed_path` into the pool through `urandom` (normally `/dev/urandom`),
/// then immediately replaces the file with fresh bytes.
pub fn load_seed(seed_path: &Path, urandom: &Path) -> Result<SeedOutcome, EntropyError> {
    let mut seed = [0u8; SEED_LEN];
    let n = match std::fs::File::open(seed_path) {
        Ok(mut f) => read_up_to(&mut f, &mut seed).map_err(|source| EntropyError::ReadSeed {
            path: seed_path.to_owned(),
            source,
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => {
            return Err(EntropyError::ReadSeed {
                path: seed_path.to_owned(),
                source,
            });
        }
    };
    if n > 0 {
        let feed_err = |source| EntropyError::Feed {
            path: urandom.to_owned(),
            source,
        };
        let mut pool = OpenOptions::new()
            .write(true)
            .open(urandom)
            .map_err(feed_err)?;
        pool.write_all(seed.get(..n).unwrap_or(&[]))
            .map_err(feed_err)?;
    }
    save_seed(seed_path)?;
    Ok(if n > 0 {
        SeedOutcome::Loaded(n)
    } else {
        SeedOutcome::NoSeed
    })
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(buf.get_mut(n..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("dynamod-sys-entropy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn random_bytes_are_not_all_zero() {
        let mut b = [0u8; 64];
        fill_random(&mut b).unwrap();
        assert!(b.iter().any(|x| *x != 0));
    }

    #[test]
    fn loading_a_seed_feeds_it_and_replaces_the_file_with_fresh_private_bytes() {
        let d = temp("load");
        let seed = d.join("lib/random-seed");
        std::fs::create_dir_all(seed.parent().unwrap()).unwrap();
        std::fs::write(&seed, vec![7u8; 100]).unwrap();
        let pool = d.join("pool");
        std::fs::write(&pool, b"").unwrap();

        assert_eq!(load_seed(&seed, &pool).unwrap(), SeedOutcome::Loaded(100));
        assert_eq!(std::fs::read(&pool).unwrap(), vec![7u8; 100]);
        let fresh = std::fs::read(&seed).unwrap();
        assert_eq!(fresh.len(), SEED_LEN);
        assert_ne!(&fresh[..100], &[7u8; 100][..]);
        let mode = std::fs::metadata(&seed).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_seed_creates_one_without_touching_the_pool() {
        let d = temp("missing");
        let seed = d.join("new/dir/random-seed");
        let pool = d.join("pool-that-does-not-exist");
        assert_eq!(load_seed(&seed, &pool).unwrap(), SeedOutcome::NoSeed);
        assert_eq!(std::fs::read(&seed).unwrap().len(), SEED_LEN);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temporary() {
        let d = temp("atomic");
        let f = d.join("file");
        std::fs::write(&f, b"old").unwrap();
        write_atomic(&f, b"new\n", 0o444).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new\n");
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file")]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
