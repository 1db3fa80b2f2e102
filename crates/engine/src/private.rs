//! Owner-only files and directories. Everything under a data dir is a customer's disk bytes (or
//! names and keys that lead to them), so the engine creates directories 0700 and files 0600
//! itself, whatever the umask of the process using it: a library user gets what the binary
//! gets.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of every file the engine creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the engine creates.
pub const DIR_MODE: u32 = 0o700;

/// `fs::create_dir_all`, each directory it makes 0700 (existing ones are left as they are).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(path)
}

/// `OpenOptions::new()` whose created files are 0600.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// `File::create` (write, create, truncate) with mode 0600.
pub fn create(path: &Path) -> io::Result<File> {
    options().write(true).create(true).truncate(true).open(path)
}
