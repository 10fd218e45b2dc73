//! File system access shaped like `std::fs`, run on the blocking pool.
//!
//! Every call that touches the file system runs through [`crate::spawn_blocking`]: inside a fiber
//! it parks only the fiber while a pool thread does the syscall; on a plain OS thread it simply
//! runs in place. Because a pool job must own its data, `File` reads and writes copy through a
//! buffer owned by the job (one extra memory copy per call).
//!
//! Not done: `DirEntry` methods (`metadata`, `file_type`) are std's and may make a syscall on the
//! calling worker; `read_dir` reads the whole directory in one pool job.
use std::fs as stdfs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use std::fs::{DirEntry, FileType, Metadata, Permissions};

use crate::spawn_blocking;

/// An open file, as `std::fs::File`. Operations run on the blocking pool.
#[derive(Debug)]
pub struct File {
    inner: Arc<stdfs::File>,
}

/// Options for opening a file, as `std::fs::OpenOptions`.
#[derive(Clone, Debug)]
pub struct OpenOptions(stdfs::OpenOptions);

/// An iterator over the entries of a directory, as `std::fs::ReadDir`.
#[derive(Debug)]
pub struct ReadDir {
    entries: std::vec::IntoIter<io::Result<DirEntry>>,
}

fn owned(path: impl AsRef<Path>) -> PathBuf {
    path.as_ref().to_path_buf()
}

impl File {
    /// Opens a file for reading.
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens a file for writing, creating or truncating it.
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Returns a new `OpenOptions`.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    fn run<T: Send + 'static>(&self, f: impl FnOnce(&stdfs::File) -> T + Send + 'static) -> T {
        let file = self.inner.clone();
        spawn_blocking(move || f(&file))
    }

    /// Flushes data and metadata to disk.
    pub fn sync_all(&self) -> io::Result<()> {
        self.run(|f| f.sync_all())
    }

    /// Flushes data to disk.
    pub fn sync_data(&self) -> io::Result<()> {
        self.run(|f| f.sync_data())
    }

    /// Truncates or extends the file to `size` bytes.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.run(move |f| f.set_len(size))
    }

    /// The file's metadata.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.run(|f| f.metadata())
    }

    /// Changes the file's permissions.
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        self.run(move |f| f.set_permissions(perm))
    }

    /// A new handle to the same open file.
    pub fn try_clone(&self) -> io::Result<File> {
        let f = self.run(|f| f.try_clone())?;
        Ok(File { inner: Arc::new(f) })
    }

    fn read_impl(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let data = self.run(move |mut f| {
            let mut data = vec![0; len];
            let n = f.read(&mut data)?;
            data.truncate(n);
            Ok::<_, io::Error>(data)
        })?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    fn write_impl(&self, buf: &[u8]) -> io::Result<usize> {
        let data = buf.to_vec();
        self.run(move |mut f| f.write(&data))
    }

    fn seek_impl(&self, pos: SeekFrom) -> io::Result<u64> {
        self.run(move |mut f| f.seek(pos))
    }
}

impl From<stdfs::File> for File {
    fn from(f: stdfs::File) -> File {
        File { inner: Arc::new(f) }
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let data = self.run(|mut f| {
            let mut data = Vec::new();
            f.read_to_end(&mut data).map(|_| data)
        })?;
        buf.extend_from_slice(&data);
        Ok(data.len())
    }
}

impl Read for &File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let data = buf.to_vec();
        self.run(move |mut f| f.write_all(&data))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seek_impl(pos)
    }
}

impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seek_impl(pos)
    }
}

impl std::os::fd::AsRawFd for File {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.as_raw_fd()
    }
}

impl std::os::fd::AsFd for File {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// All options off.
    pub fn new() -> OpenOptions {
        OpenOptions(stdfs::OpenOptions::new())
    }
    /// Read access.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.0.read(read);
        self
    }
    /// Write access.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.0.write(write);
        self
    }
    /// Append mode.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.0.append(append);
        self
    }
    /// Truncate on open.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.0.truncate(truncate);
        self
    }
    /// Create if missing.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.0.create(create);
        self
    }
    /// Create, failing if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.0.create_new(create_new);
        self
    }
    /// Opens `path` with these options (on the blocking pool).
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let (opts, path) = (self.0.clone(), owned(path));
        let f = spawn_blocking(move || opts.open(path))?;
        Ok(File::from(f))
    }
}

/// Reads a whole file.
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let path = owned(path);
    spawn_blocking(move || stdfs::read(path))
}

/// Reads a whole file into a string.
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    let path = owned(path);
    spawn_blocking(move || stdfs::read_to_string(path))
}

/// Writes a whole file, creating or truncating it.
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    let (path, contents) = (owned(path), contents.as_ref().to_vec());
    spawn_blocking(move || stdfs::write(path, contents))
}

/// Copies a file; returns the number of bytes copied.
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (owned(from), owned(to));
    spawn_blocking(move || stdfs::copy(from, to))
}

/// Renames a file or directory.
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let (from, to) = (owned(from), owned(to));
    spawn_blocking(move || stdfs::rename(from, to))
}

/// Removes a file.
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = owned(path);
    spawn_blocking(move || stdfs::remove_file(path))
}

/// Creates a directory.
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = owned(path);
    spawn_blocking(move || stdfs::create_dir(path))
}

/// Creates a directory and all missing parents.
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = owned(path);
    spawn_blocking(move || stdfs::create_dir_all(path))
}

/// Removes an empty directory.
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = owned(path);
    spawn_blocking(move || stdfs::remove_dir(path))
}

/// Removes a directory and everything in it.
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = owned(path);
    spawn_blocking(move || stdfs::remove_dir_all(path))
}

/// Lists a directory (read completely on the blocking pool).
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let path = owned(path);
    let entries = spawn_blocking(move || stdfs::read_dir(path).map(|rd| rd.collect::<Vec<_>>()))?;
    Ok(ReadDir {
        entries: entries.into_iter(),
    })
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;
    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        self.entries.next()
    }
}

/// Metadata of a path (following symlinks).
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = owned(path);
    spawn_blocking(move || stdfs::metadata(path))
}

/// Metadata of a path (not following symlinks).
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = owned(path);
    spawn_blocking(move || stdfs::symlink_metadata(path))
}

/// Canonical, absolute form of a path.
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = owned(path);
    spawn_blocking(move || stdfs::canonicalize(path))
}
