//! The `synchronicity` command line as a user runs it, and what its output must look like.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The product binary's path, as cargo built it for this test.
pub(crate) fn product_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_synchronicity"))
}

/// The product binary, as cargo built it for this test.
pub(crate) fn bin() -> Command {
    Command::new(product_binary())
}

/// The product binary as a user with a home of its own (`home/config`, `home/cache`,
/// `HOME=home`), so no test reads another's (or the machine's) config or cache.
pub(crate) fn user_command(home: &Path) -> Command {
    let mut cmd = bin();
    cmd.env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HOME", home);
    cmd
}

/// `o`'s stderr as text.
pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command succeeded (else panics with its output); its stderr.
pub(crate) fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
    stderr(o)
}

/// The command failed with exactly one line on stderr, an `error: ` line; that line.
pub(crate) fn one_line_error(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(o).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// The command failed and its last stderr line is its `error: ` line (progress lines may come
/// before it); that line.
pub(crate) fn refused(o: &Output) -> String {
    assert!(!o.status.success(), "expected a refusal: {}", stderr(o));
    let err = stderr(o);
    let line = err
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_string();
    assert_eq!(err.trim_end().lines().last(), Some(line.as_str()), "{err}");
    line
}
