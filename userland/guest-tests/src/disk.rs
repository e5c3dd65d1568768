//! File systems made for a test (issue "real disks"): a real one on a loop
//! device over a sparse image in TMPDIR, optionally under device-mapper so
//! that the test can fail the device or cut its power; and the stacked
//! ones, overlayfs and FUSE (bindfs), over directories in TMPDIR.
//!
//! The guest has no udev: device-mapper makes its own /dev/mapper nodes.

use crate::umount;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use tempfile::TempDir;

/// A file system a [`Disk`] can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fs {
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Exfat,
}

impl Fs {
    /// The type `mount -t` takes, which also ends its `mkfs.` command.
    pub fn name(self) -> &'static str {
        match self {
            Fs::Ext4 => "ext4",
            Fs::Xfs => "xfs",
            Fs::Btrfs => "btrfs",
            Fs::Vfat => "vfat",
            Fs::Exfat => "exfat",
        }
    }

    /// mkfs's options to write over the device without asking, quietly
    /// where it can be.
    fn mkfs_options(self) -> &'static [&'static str] {
        match self {
            Fs::Ext4 => &["-q", "-F"],
            Fs::Xfs | Fs::Btrfs => &["-q", "-f"],
            // mkfs.fat refuses a whole (unpartitioned) device without -I.
            Fs::Vfat => &["-I"],
            // mkfs.exfat asks nothing, and its -f is a full (zeroing) format.
            Fs::Exfat => &[],
        }
    }

    /// The smallest image worth making: mkfs.xfs refuses less than 300 MiB,
    /// and btrfs wants room for its duplicated metadata.
    fn min_size_mib(self) -> u64 {
        match self {
            Fs::Xfs => 300,
            Fs::Btrfs => 256,
            Fs::Ext4 | Fs::Vfat | Fs::Exfat => 0,
        }
    }
}

/// A fresh file system on a loop device, mounted; unmounted and taken
/// apart when dropped.
pub struct Disk {
    fs: Fs,
    mnt: PathBuf,
    loop_dev: String,
    /// The device-mapper device over the loop device, if any.
    dm_name: Option<String>,
    /// What the file system is on: the loop or the device-mapper device.
    dev: String,
    sectors: u64,
    /// The image, the mount point and the last device-mapper table.
    dir: TempDir,
}

/// Numbers the device-mapper devices of one test process.
static DM_DEVICES: AtomicU32 = AtomicU32::new(0);

impl Disk {
    /// `fs` on a loop device over a sparse image of `size_mib` MiB (raised
    /// to what the file system needs), mounted with default options.
    pub fn new(fs: Fs, size_mib: u64) -> Disk {
        Disk::make(fs, size_mib, false)
    }

    /// Like [`Disk::new`], with a device-mapper device (a `linear` one at
    /// first) between the loop device and the file system, whose table
    /// [`Disk::load_table`] swaps.
    pub fn on_dm(fs: Fs, size_mib: u64) -> Disk {
        Disk::make(fs, size_mib, true)
    }

    fn make(fs: Fs, size_mib: u64, on_dm: bool) -> Disk {
        let size_mib = size_mib.max(fs.min_size_mib());
        let dir = tempfile::Builder::new().prefix(&format!("disk-{}-", fs.name())).tempdir().expect("create disk dir");
        let image = dir.path().join("image");
        fs::File::create(&image).and_then(|f| f.set_len(size_mib << 20)).expect("make the sparse image");
        let loop_dev = run(Command::new("losetup").args(["-f", "--show"]).arg(&image)).trim().to_string();
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).expect("create mount point");
        // Built before the steps that may fail, so that dropping it undoes
        // what was done.
        let mut disk = Disk { fs, mnt, dev: loop_dev.clone(), loop_dev, dm_name: None, sectors: size_mib * 2048, dir };
        if on_dm {
            let name = format!("rts-{}-{}", std::process::id(), DM_DEVICES.fetch_add(1, Ordering::Relaxed));
            run(dmsetup().args(["create", &name, "--table", &disk.linear_table()]));
            disk.dev = format!("/dev/mapper/{name}");
            disk.dm_name = Some(name);
        }
        run(Command::new(format!("mkfs.{}", fs.name())).args(fs.mkfs_options()).arg(&disk.dev));
        disk.mount();
        disk
    }

    pub fn mnt(&self) -> &Path {
        &self.mnt
    }

    pub fn dev(&self) -> &str {
        &self.dev
    }

    /// Creates the directory `name` at the top of the file system, for one
    /// side of a pair: the top itself may hold the file system's own
    /// entries (ext4's lost+found).
    pub fn side(&self, name: &str) -> PathBuf {
        let path = self.mnt.join(name);
        fs::create_dir(&path).expect("create a side on the disk");
        path
    }

    fn mount(&self) {
        run(Command::new("mount").args(["-t", self.fs.name(), &self.dev]).arg(&self.mnt));
    }

    /// `mount -o remount,OPTS`: `ro` or `rw`, say.
    pub fn remount(&self, opts: &str) {
        run(Command::new("mount").args(["-o", &format!("remount,{opts}")]).arg(&self.mnt));
    }

    /// Writes all the file system holds to the device (`sync -f`).
    pub fn sync(&self) {
        run(Command::new("sync").arg("-f").arg(&self.mnt));
    }

    /// Swaps the device-mapper table (a device made by [`Disk::on_dm`]), the
    /// file system frozen and flushed around the swap.
    pub fn load_table(&self, table: &str) {
        self.swap_table(table, true);
    }

    /// Swaps the table; without `flush`, what the file system has not
    /// written yet stays unwritten (`--nolockfs`), as in a crash.
    fn swap_table(&self, table: &str, flush: bool) {
        let name = self.dm_name.as_deref().expect("a device-mapper disk (Disk::on_dm)");
        run(dmsetup().arg("suspend").args((!flush).then_some("--nolockfs")).arg(name));
        // From a file: a table of several lines does not fit `--table`.
        let file = self.dir.path().join("table");
        fs::write(&file, format!("{table}\n")).expect("write the device-mapper table");
        run(dmsetup().args(["load", name]).arg(&file));
        run(dmsetup().args(["resume", name]));
    }

    /// The loop device as it is.
    pub fn linear_table(&self) -> String {
        format!("0 {} linear {} 0", self.sectors, self.loop_dev)
    }

    /// The device as it is, except that every read and write of the blocks
    /// of `file` (a file on this disk) fails with EIO: the journal and the
    /// other files keep working.
    pub fn table_failing_blocks_of(&self, file: &Path) -> String {
        // filefrag -e -b512: one line per extent, "n: logical..: start..end: length: ...",
        // in 512-byte sectors of the device.
        let out = run(Command::new("filefrag").args(["-e", "-b512"]).arg(file));
        let mut extents: Vec<(u64, u64)> = out
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(':').map(str::trim).collect();
                fields.first()?.parse::<u64>().ok()?;
                let (start, end) = fields.get(2)?.split_once("..")?;
                Some((start.trim().parse().ok()?, end.trim().parse().ok()?))
            })
            .collect();
        assert!(!extents.is_empty(), "no extents of {file:?} in: {out}");
        extents.sort();
        let mut table = String::new();
        let mut at = 0;
        for (start, end) in extents {
            if start > at {
                table += &format!("{at} {} linear {} {at}\n", start - at, self.loop_dev);
            }
            table += &format!("{start} {} error\n", end + 1 - start);
            at = end + 1;
        }
        table += &format!("{at} {} linear {} {at}", self.sectors - at, self.loop_dev);
        table
    }

    /// Every read and write fails with EIO.
    pub fn error_table(&self) -> String {
        format!("0 {} error", self.sectors)
    }

    /// A slow disk: every write (and flush) takes `write_ms` longer, reads
    /// none.
    pub fn delay_table(&self, write_ms: u32) -> String {
        format!("0 {} delay {} 0 0 {} 0 {write_ms}", self.sectors, self.loop_dev, self.loop_dev)
    }

    /// Up 0 s, down 180 s: every write is dropped (and reported done).
    pub fn flakey_drop_writes_table(&self) -> String {
        format!("0 {} flakey {} 0 0 180 1 drop_writes", self.sectors, self.loop_dev)
    }

    /// Up 180 s, down 0 s: every write passes.
    pub fn flakey_up_table(&self) -> String {
        format!("0 {} flakey {} 0 180 0", self.sectors, self.loop_dev)
    }

    /// Power loss, as xfstests simulates it: from now on every write is
    /// dropped (and reported done), what the file system still holds
    /// included. Then [`Disk::restore_power`].
    pub fn cut_power(&self) {
        self.swap_table(&self.flakey_drop_writes_table(), false);
    }

    /// After [`Disk::cut_power`]: unmounts (its writes dropped too), lets
    /// writes pass again and mounts, which replays the journal. The file
    /// system must not be busy: stop the sync first.
    pub fn restore_power(&self) {
        umount(&self.mnt, false).unwrap_or_else(|err| panic!("unmount {:?} for the crash: {err}", self.mnt));
        self.swap_table(&self.flakey_up_table(), false);
        self.mount();
    }
}

impl Drop for Disk {
    /// Best effort, never a panic: a failed test may leave the file system
    /// busy, and then it goes lazily.
    fn drop(&mut self) {
        unmount_now_or_lazily(&self.mnt);
        if let Some(name) = &self.dm_name {
            let removed = dmsetup().args(["remove", name]).output().is_ok_and(|out| out.status.success());
            if !removed {
                let _ = dmsetup().args(["remove", "--deferred", name]).output();
            }
        }
        // A loop device still in use is detached when its last user goes.
        let _ = Command::new("losetup").args(["-d", &self.loop_dev]).output();
    }
}

/// An overlayfs over a lower layer with content of its own and an empty
/// upper layer, all in TMPDIR; unmounted when dropped.
pub struct Overlay {
    merged: PathBuf,
    _layers: TempDir,
}

impl Overlay {
    /// Mounts it with `lower` (file names, relative, and their content;
    /// directories made as needed) in the lower layer. With `redirect_dir`
    /// off, as most systems have it: a directory of the lower layer cannot
    /// be renamed (EXDEV).
    pub fn new(lower: &[(&str, &[u8])]) -> Overlay {
        let layers = tempfile::Builder::new().prefix("overlay-").tempdir().expect("create overlay dir");
        let layer = |name: &str| {
            let path = layers.path().join(name);
            fs::create_dir(&path).expect("create overlay layer");
            path
        };
        let (lowerdir, upperdir, workdir, merged) = (layer("lower"), layer("upper"), layer("work"), layer("merged"));
        for (rel, content) in lower {
            let path = lowerdir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).expect("create lower dir");
            fs::write(&path, content).expect("write lower file");
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off",
            lowerdir.display(),
            upperdir.display(),
            workdir.display()
        );
        run(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &options]).arg(&merged));
        Overlay { merged, _layers: layers }
    }

    /// The merged directory.
    pub fn mnt(&self) -> &Path {
        &self.merged
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        unmount_now_or_lazily(&self.merged);
    }
}

/// A FUSE file system: bindfs over an empty directory in TMPDIR;
/// unmounted when dropped.
pub struct Bindfs {
    mnt: PathBuf,
    _dirs: TempDir,
}

impl Bindfs {
    pub fn mount() -> Bindfs {
        let dirs = tempfile::Builder::new().prefix("bindfs-").tempdir().expect("create bindfs dir");
        let (source, mnt) = (dirs.path().join("source"), dirs.path().join("mnt"));
        for dir in [&source, &mnt] {
            fs::create_dir(dir).expect("create bindfs dir");
        }
        // bindfs returns once mounted, its daemon in the background.
        run(Command::new("bindfs").arg(&source).arg(&mnt));
        Bindfs { mnt, _dirs: dirs }
    }

    pub fn mnt(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Bindfs {
    fn drop(&mut self) {
        unmount_now_or_lazily(&self.mnt);
    }
}

fn unmount_now_or_lazily(mnt: &Path) {
    if umount(mnt, false).is_err() {
        let _ = umount(mnt, true);
    }
}

/// dmsetup without udev, which the guest lacks: it makes the /dev/mapper
/// nodes itself and waits for no udev event.
fn dmsetup() -> Command {
    let mut command = Command::new("dmsetup");
    command.env("DM_DISABLE_UDEV", "1").arg("--noudevsync");
    command
}

/// Runs `command` and returns its output; panics with its stderr if it
/// fails.
fn run(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|err| panic!("run {command:?}: {err}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An NFS (version 4.0) mount over loopback of a tmpfs that the guest's
/// own NFS server exports; server and mount taken down when dropped.
pub struct Nfs {
    mnt: PathBuf,
    _dirs: TempDir,
}

/// Where the server keeps its state; the guest's root is read-only.
const NFS_STATE: &str = "/var/lib/nfs";

impl Nfs {
    /// Starts the server (a grace period of 10 s, the least it takes, in
    /// which it refuses new files) and mounts its export. Returns once a
    /// file can be created on the mount.
    pub fn mount() -> Nfs {
        let dirs = tempfile::Builder::new().prefix("nfs-").tempdir().expect("create nfs dir");
        let (export, mnt) = (dirs.path().join("export"), dirs.path().join("mnt"));
        for dir in [&export, &mnt] {
            fs::create_dir(dir).expect("create nfs dir");
        }
        run(Command::new("mount").args(["-t", "tmpfs", "tmpfs", NFS_STATE]));
        for file in ["etab", "rmtab", "xtab"] {
            fs::write(Path::new(NFS_STATE).join(file), b"").expect("create the server's tables");
        }
        run(Command::new("ip").args(["link", "set", "lo", "up"]));
        // No delegations: nfsd 6.12 warns when it revokes one that its
        // 4.0 client did not give back within the lease, which a slow
        // (emulated) guest can miss. Without them every open goes to the
        // server, as it does for a file that is shared.
        fs::write("/proc/sys/fs/leases-enable", "0").expect("turn file leases off");
        run(Command::new("mount").args(["-t", "nfsd", "nfsd", "/proc/fs/nfsd"]));
        for (knob, value) in [("nfsv4gracetime", "10"), ("nfsv4leasetime", "10")] {
            fs::write(Path::new("/proc/fs/nfsd").join(knob), value).expect("shorten the grace period");
        }
        let share = format!("127.0.0.1:{}", export.display());
        run(Command::new("exportfs").args(["-o", "rw,no_root_squash,fsid=0,no_subtree_check,sync", &share]));
        run(Command::new("rpc.mountd").args(["-N", "3", "--no-udp"]));
        run(Command::new("rpc.nfsd").args(["-N", "3", "-U", "2"]));
        let nfs = Nfs { mnt, _dirs: dirs };
        run(Command::new("mount").args(["-t", "nfs4", "-o", "vers=4.0", "127.0.0.1:/"]).arg(&nfs.mnt));
        // The first create waits out the grace period.
        let probe = nfs.mnt.join(".probe");
        fs::write(&probe, b"").expect("create a file on NFS");
        fs::remove_file(&probe).expect("remove the probe");
        nfs
    }

    pub fn mnt(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Nfs {
    fn drop(&mut self) {
        unmount_now_or_lazily(&self.mnt);
        let _ = Command::new("rpc.nfsd").arg("0").output();
        let _ = Command::new("exportfs").arg("-ua").output();
        let _ = Command::new("pkill").args(["-x", "rpc.mountd"]).output();
        unmount_now_or_lazily(Path::new("/proc/fs/nfsd"));
        unmount_now_or_lazily(Path::new(NFS_STATE));
        let _ = fs::write("/proc/sys/fs/leases-enable", "1");
    }
}
