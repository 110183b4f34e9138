//! The command line, parsed by hand: the demo has three options and no other need for
//! a parser, and its help must print before anything is created.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

/// The synopsis, also printed after a usage error.
pub const SYNOPSIS: &str = "Usage: languard-demo [OPTIONS] [DIR]";

/// Printed by `--help`.
pub const USAGE: &str = "\
Usage: languard-demo [OPTIONS] [DIR]

Runs Languard on this machine: a controller on SQLite, one enrolled local agent and
two simulated Arma 3 servers, all real processes, with their data in DIR (default
./demo-data; it must not exist yet). Prints the console address and the one-time
password of the `admin` account. Ctrl-C stops everything; DIR stays.

Options:
      --listen ADDR       HTTP address of the controller (API and console)
                          [default: 127.0.0.1:8080]
      --link-listen ADDR  Address agents dial (mutual TLS) [default: 127.0.0.1:7443]
  -h, --help              Print this help";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// `-h`/`--help`.
    Help,
    /// Run the demo.
    Run(Args),
}

/// A demo run.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    /// The data folder, absolute (the agent refuses relative paths).
    pub dir: PathBuf,
    /// The controller's HTTP address.
    pub listen: SocketAddr,
    /// The controller's agent link address.
    pub link_listen: SocketAddr,
}

/// Parses the arguments after the program name; relative paths are resolved against `cwd`.
/// The error is one line, for `languard-demo: <error>`.
pub fn parse(args: impl IntoIterator<Item = OsString>, cwd: &Path) -> Result<Parsed, String> {
    let mut dir: Option<PathBuf> = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut link_listen = SocketAddr::from(([127, 0, 0, 1], 7443));
    let mut options_done = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        if options_done || !text.starts_with('-') || text == "-" {
            if dir.is_some() {
                return Err(format!("unexpected argument `{text}` (one folder only)"));
            }
            dir = Some(PathBuf::from(arg));
            continue;
        }
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (text.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--" => options_done = true,
            "--listen" | "--link-listen" => {
                let value = match inline {
                    Some(v) => v,
                    None => args
                        .next()
                        .map(|v| v.to_string_lossy().into_owned())
                        .ok_or_else(|| format!("{flag} needs an address (HOST:PORT)"))?,
                };
                let addr: SocketAddr = value.parse().map_err(|_| {
                    format!("{flag}: `{value}` is not an address like 127.0.0.1:8080")
                })?;
                if flag == "--listen" {
                    listen = addr;
                } else {
                    link_listen = addr;
                }
            }
            _ => return Err(format!("unknown option `{text}`")),
        }
    }
    if listen == link_listen {
        return Err(format!("--listen and --link-listen are both {listen}"));
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from("demo-data"));
    Ok(Parsed::Run(Args {
        dir: absolute(cwd, &dir),
        listen,
        link_listen,
    }))
}

/// `path` against `cwd`, without `.` components (the folder may not exist yet, so no
/// `canonicalize`; `..` stays as written).
pub fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    cwd.join(path)
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(OsString::from), Path::new("/home/me"))
    }

    fn ok(args: &[&str]) -> Args {
        match run(args) {
            Ok(Parsed::Run(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_help_starts_with_the_synopsis() {
        assert!(USAGE.starts_with(SYNOPSIS));
    }

    #[test]
    fn a_relative_folder_becomes_absolute() {
        assert_eq!(
            ok(&["./demo-data"]).dir,
            PathBuf::from("/home/me/demo-data")
        );
        assert_eq!(ok(&["a/./b"]).dir, PathBuf::from("/home/me/a/b"));
        assert_eq!(ok(&[]).dir, PathBuf::from("/home/me/demo-data"));
        assert_eq!(ok(&["/srv/x"]).dir, PathBuf::from("/srv/x"));
    }

    #[test]
    fn defaults_are_the_controllers_usual_ports() {
        let a = ok(&[]);
        assert_eq!(a.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(a.link_listen.to_string(), "127.0.0.1:7443");
    }

    #[test]
    fn help_wins_wherever_it_is() {
        assert_eq!(run(&["-h"]), Ok(Parsed::Help));
        assert_eq!(run(&["dir", "--help"]), Ok(Parsed::Help));
        assert_eq!(run(&["--listen", "127.0.0.1:9000", "-h"]), Ok(Parsed::Help));
    }

    #[test]
    fn addresses_in_both_spellings() {
        let a = ok(&[
            "--listen",
            "127.0.0.1:9000",
            "--link-listen=127.0.0.1:9001",
            "d",
        ]);
        assert_eq!(a.listen.port(), 9000);
        assert_eq!(a.link_listen.port(), 9001);
        assert_eq!(a.dir, PathBuf::from("/home/me/d"));
    }

    #[test]
    fn bad_command_lines_are_one_line_errors() {
        for (args, want) in [
            (&["--bogus"][..], "unknown option `--bogus`"),
            (&["-x"][..], "unknown option `-x`"),
            (&["a", "b"][..], "unexpected argument `b` (one folder only)"),
            (&["--listen"][..], "--listen needs an address (HOST:PORT)"),
            (
                &["--listen", "8080"][..],
                "--listen: `8080` is not an address like 127.0.0.1:8080",
            ),
            (
                &["--link-listen", "127.0.0.1:8080"][..],
                "--listen and --link-listen are both 127.0.0.1:8080",
            ),
        ] {
            let err = run(args).expect_err(want);
            assert_eq!(err, want);
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn a_folder_named_like_a_flag_after_double_dash() {
        assert_eq!(ok(&["--", "--help"]).dir, PathBuf::from("/home/me/--help"));
    }
}
