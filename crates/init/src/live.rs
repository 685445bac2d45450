//! The live root (SPEC §2.2, `dynamod.live`): a squashfs image, read-only, under an overlay
//! whose upper layer is a tmpfs (changes vanish at shutdown) or a device (they persist).
//!
//! Layout, all under `/run` so it moves into the new root and stays reachable there:
//!
//! | path | what |
//! |---|---|
//! | `/run/dynamod/live/media` | the medium (ISO, USB stick), read-only |
//! | `/run/dynamod/live/ram` | a tmpfs holding the image with `dynamod.toram` |
//! | `/run/dynamod/live/squash` | the squashfs image, read-only |
//! | `/run/dynamod/live/rw` | the overlay's tmpfs or persistence device (`upper/`, `work/`) |
//!
//! The image is either a file on the medium (attached to a loop device) or the medium itself
//! when the device holds a squashfs directly. Without `dynamod.media=`, every device is
//! examined until one holds the image.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use dynamod_sys::blkid::BlockDevice;
use dynamod_sys::loopdev;
use dynamod_sys::mount::{self, MsFlags};

use crate::initramfs::{Mounted, NEWROOT, PhaseAError, Unwind, mount_device};
use crate::names::NameSet;
use crate::rootdev::Finder;
use crate::rootspec::{LiveParams, Overlay};
use crate::setup::chain;

/// The live system's mounts live here.
pub const LIVE_DIR: &str = "/run/dynamod/live";

/// Where the image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Image {
    /// A block device that is a squashfs.
    Device(PathBuf),
    /// A squashfs file (on the mounted medium, or copied to RAM).
    File(PathBuf),
}

fn dir(name: &str) -> PathBuf {
    Path::new(LIVE_DIR).join(name)
}

fn prepare(p: &Path) -> Result<(), PhaseAError> {
    mount::ensure_dir(p, 0o755).map_err(|e| PhaseAError::Prepare(chain(&e)))
}

fn mount_or(
    source: &str,
    target: &Path,
    fs_type: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), PhaseAError> {
    mount::mount(source, target, fs_type, flags, data).map_err(|e| PhaseAError::Mount {
        device: source.to_owned(),
        target: target.to_owned(),
        tried: vec![(
            fs_type.to_owned(),
            e.errno().unwrap_or(dynamod_sys::nix::errno::Errno::EIO),
        )],
    })
}

/// Assembles the live root on [`NEWROOT`].
pub fn assemble(
    l: &LiveParams,
    finder: &mut Finder,
    unwind: &mut Unwind,
) -> Result<Mounted, PhaseAError> {
    for d in ["media", "squash", "rw"] {
        prepare(&dir(d))?;
    }
    if l.delay_s > 0 {
        log_at!(
            Notice,
            "rootdelay={}: waiting before looking for the live medium",
            l.delay_s
        );
        std::thread::sleep(std::time::Duration::from_secs(l.delay_s));
    }

    // 1. The image: on the named medium, or on whichever device holds it.
    let (image, medium) = match &l.media {
        Some(spec) => {
            let dev = finder.wait_for(spec, "live medium", l.wait)?;
            info!("live medium {spec} is {}", dev.describe());
            match open_medium(finder, &dev, &l.squashfs, unwind)? {
                Some(image) => (image, dev.node.display().to_string()),
                None => {
                    return Err(PhaseAError::NoImage {
                        path: l.squashfs.clone(),
                        medium: dev.node.display().to_string(),
                    });
                }
            }
        }
        None => {
            let mut tried = NameSet::new();
            let what = format!("live medium holding {}", l.squashfs.display());
            let found = finder.wait_until(&what, l.wait, |finder, devices| {
                search(finder, devices, &l.squashfs, unwind, &mut tried)
            })?;
            info!("found the live image on {}", found.1);
            found
        }
    };

    // 2. Into memory, when asked, so the medium can go.
    let (image, medium) = match (image, l.to_ram) {
        (Image::File(file), true) => (
            Image::File(copy_to_ram(&file, unwind)?),
            format!("RAM, copied from {medium}"),
        ),
        (image, _) => (image, medium),
    };

    // 3. The squashfs.
    // The loop device stays attached while `attached` lives; the mount then holds it.
    let (source, attached) = match &image {
        Image::Device(node) => (node.clone(), None),
        Image::File(file) => {
            finder.load_module("loop");
            let dev = loopdev::attach_read_only(file, Path::new("/dev"))
                .map_err(|e| PhaseAError::Prepare(chain(&e)))?;
            info!("attached {} to {}", file.display(), dev.path.display());
            (dev.path.clone(), Some(dev))
        }
    };
    finder.ensure_filesystem("squashfs");
    let squash = dir("squash");
    mount_or(
        &source.to_string_lossy(),
        &squash,
        "squashfs",
        MsFlags::MS_RDONLY,
        None,
    )?;
    drop(attached);
    unwind.push(&squash);

    // 4. The root: the image alone, or under an overlay.
    prepare(Path::new(NEWROOT))?;
    let (fs_type, read_only, how) = match &l.overlay {
        Overlay::Off => {
            mount_or(
                &squash.to_string_lossy(),
                Path::new(NEWROOT),
                "none",
                MsFlags::MS_BIND,
                None,
            )?;
            unwind.push(NEWROOT);
            (
                "squashfs".to_owned(),
                true,
                "squashfs, no overlay".to_owned(),
            )
        }
        Overlay::Tmpfs => {
            let rw = dir("rw");
            mount_or("tmpfs", &rw, "tmpfs", MsFlags::MS_NOSUID, Some("mode=0755"))?;
            unwind.push(&rw);
            overlay(finder, &squash, &rw, unwind)?;
            (
                "overlay".to_owned(),
                false,
                "squashfs + overlay on tmpfs".to_owned(),
            )
        }
        Overlay::Device(spec) => {
            let dev = finder.wait_for(spec, "overlay device", l.wait)?;
            let rw = dir("rw");
            mount_device(finder, &dev, &rw, &[], MsFlags::empty(), "")?;
            unwind.push(&rw);
            overlay(finder, &squash, &rw, unwind)?;
            (
                "overlay".to_owned(),
                false,
                format!("squashfs + overlay on {} (persistent)", dev.node.display()),
            )
        }
    };
    let source = match &image {
        Image::Device(node) => node.display().to_string(),
        Image::File(file) => format!("{} on {medium}", file.display()),
    };
    Ok(Mounted {
        spec: l.media.as_ref().map_or_else(
            || "dynamod.live".to_owned(),
            |m| format!("dynamod.media={m}"),
        ),
        source,
        fs_type,
        read_only,
        live: Some(how),
    })
}

/// Mounts the overlay of `lower` and `rw/upper` on [`NEWROOT`].
fn overlay(
    finder: &mut Finder,
    lower: &Path,
    rw: &Path,
    unwind: &mut Unwind,
) -> Result<(), PhaseAError> {
    let (upper, work) = (rw.join("upper"), rw.join("work"));
    prepare(&upper)?;
    prepare(&work)?;
    finder.ensure_filesystem("overlay");
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount_or(
        "overlay",
        Path::new(NEWROOT),
        "overlay",
        MsFlags::empty(),
        Some(&data),
    )?;
    unwind.push(NEWROOT);
    Ok(())
}

/// Looks at one device for the image: a squashfs device is the image itself; a filesystem is
/// mounted read-only on the media directory and kept mounted when it holds `image_path`.
fn open_medium(
    finder: &mut Finder,
    dev: &BlockDevice,
    image_path: &Path,
    unwind: &mut Unwind,
) -> Result<Option<Image>, PhaseAError> {
    if dev.probe.as_ref().is_some_and(|p| p.fs_type == "squashfs") {
        return Ok(Some(Image::Device(dev.node.clone())));
    }
    let media = dir("media");
    mount_device(finder, dev, &media, &[], MsFlags::MS_RDONLY, "")?;
    let file = media.join(image_path.strip_prefix("/").unwrap_or(image_path));
    if file.is_file() {
        unwind.push(&media);
        return Ok(Some(Image::File(file)));
    }
    if let Err(e) = mount::unmount(&media, true) {
        warn!("{}", chain(&e));
    }
    Ok(None)
}

/// One pass of the search over the devices present: the first that holds the image.
fn search(
    finder: &mut Finder,
    devices: &[BlockDevice],
    image_path: &Path,
    unwind: &mut Unwind,
    tried: &mut NameSet,
) -> Option<(Image, String)> {
    for dev in devices {
        let Some(probe) = &dev.probe else { continue };
        if !probe.mountable() || !tried.insert(&dev.name) {
            continue;
        }
        match open_medium(finder, dev, image_path, unwind) {
            Ok(Some(image)) => return Some((image, dev.node.display().to_string())),
            Ok(None) => info!("{} does not hold {}", dev.describe(), image_path.display()),
            Err(e) => info!("{}: {e}", dev.name),
        }
    }
    None
}

/// Copies the image into a tmpfs of its own and lets go of the medium.
fn copy_to_ram(file: &Path, unwind: &mut Unwind) -> Result<PathBuf, PhaseAError> {
    let size = std::fs::metadata(file)
        .map_err(|e| PhaseAError::Prepare(format!("stat {}: {e}", file.display())))?
        .len();
    let ram = dir("ram");
    prepare(&ram)?;
    // Room for the image plus the tmpfs's own bookkeeping.
    let opts = format!("mode=0755,size={}", size + (16 << 20));
    mount_or("tmpfs", &ram, "tmpfs", MsFlags::MS_NOSUID, Some(&opts))?;
    unwind.push(&ram);
    let dst = ram.join("root.squashfs");
    info!(
        "dynamod.toram: copying {} ({} MiB) into memory",
        file.display(),
        size >> 20
    );
    copy_with_progress(file, &dst, size)
        .map_err(|e| PhaseAError::Prepare(format!("copy {} to RAM: {e}", file.display())))?;
    let media = dir("media");
    if file.starts_with(&media) {
        if let Err(e) = mount::unmount(&media, true) {
            warn!("{}", chain(&e));
        }
        unwind.forget(&media);
    }
    Ok(dst)
}

fn copy_with_progress(from: &Path, to: &Path, size: u64) -> std::io::Result<()> {
    const STEP: u64 = 64 << 20;
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::File::create(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copied: u64 = 0;
    let mut next = STEP;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(buf.get(..n).unwrap_or(&[]))?;
        copied += n as u64;
        if copied >= next {
            log_at!(
                Notice,
                "dynamod.toram: {} of {} MiB",
                copied >> 20,
                size >> 20
            );
            next += STEP;
        }
    }
    if copied != size {
        return Err(std::io::Error::other(format!(
            "copied {copied} bytes of {size}"
        )));
    }
    Ok(())
}
