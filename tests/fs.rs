//! `fiber::fs` round trips, on plain threads and inside fibers.
mod support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use fiber::fs::{self, File, OpenOptions};
use support::both;

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("fiber-fs-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn whole_file_helpers() {
    both(|_| {
        let d = temp_dir("whole");
        fs::create_dir_all(d.join("a/b")).unwrap();
        let f = d.join("a/b/x.txt");
        fs::write(&f, "hello fibers").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "hello fibers");
        assert_eq!(fs::read(&f).unwrap(), b"hello fibers");
        assert_eq!(fs::metadata(&f).unwrap().len(), 12);
        assert_eq!(fs::copy(&f, d.join("y.txt")).unwrap(), 12);
        fs::rename(d.join("y.txt"), d.join("z.txt")).unwrap();
        assert!(fs::metadata(d.join("y.txt")).is_err());
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "z.txt"]);
        fs::remove_file(d.join("z.txt")).unwrap();
        assert_eq!(
            fs::read(d.join("z.txt")).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        fs::remove_dir_all(&d).unwrap();
        assert!(!d.exists());
    });
}

#[test]
fn file_read_write_seek_sync_len() {
    both(|_| {
        let d = temp_dir("file");
        fs::create_dir_all(&d).unwrap();
        let p = d.join("f.bin");
        let mut f = File::create(&p).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), data.len() as u64);
        f.set_len(50_000).unwrap();
        drop(f);
        let mut f = File::open(&p).unwrap();
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back, &data[..50_000]);
        assert_eq!(f.seek(SeekFrom::Start(10)).unwrap(), 10);
        let mut ten = [0u8; 10];
        f.read_exact(&mut ten).unwrap();
        assert_eq!(&ten, &data[10..20]);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"tail").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 50_004);
        assert!(OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .is_err());
        fs::remove_dir_all(&d).unwrap();
    });
}
