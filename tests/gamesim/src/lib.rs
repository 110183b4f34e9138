//! Simulators of game dedicated servers, faithful enough that our own clients and
//! third-party clients (tests/interop) agree with them.
//!
//! # `arma3server-sim`
//!
//! A stand-in for the Arma 3 dedicated server (`arma3server_x64`), see
//! `reference/arma3.md`. It takes the real launch parameters (`-port=`, `-config=`,
//! `-cfg=`, `-profiles=`, `-name=`, `-mod=`, `-serverMod=`, `-bepath=`, `-ip=`,
//! `-limitFPS=`, `-autoInit`, `-loadMissionToMemory`, `-noLogs`; keys are
//! case-insensitive, anything else is accepted and echoed in the RPT header), reads
//! server.cfg / basic.cfg / `beserver_x64.cfg`, writes the RPT to stdout (or to
//! `<profiles>/arma3server_x64_<time>.rpt` in Windows mode), serves BattlEye RCon on
//! `RConPort` and Steam A2S on game port + 1, and simulates players.
//!
//! A missing or unparsable `-config` file, or a port that is taken, ends the process
//! with exit code 1 after an `ErrorMessage:` line. `#shutdown`, SIGINT and SIGTERM end
//! it with 0 (`Game finished.` first if a mission runs). A simulated crash exits 139.
//!
//! Simulator knobs, each as `-sim-<name>=v` or env `ARMA3SIM_<NAME>` (flag wins):
//!
//! | knob | default | meaning |
//! |---|---|---|
//! | `windows` | 0 | write the timestamped `.rpt` (CRLF) in `-profiles`; stdout gets only console lines |
//! | `seed` | random | deterministic cast, pacing and chat |
//! | `players` | 4 | max simulated players (0 = none) |
//! | `player-interval-ms` | 3000 | join/leave pacing |
//! | `chat-interval-ms` | 2500 | chat pacing (0 = none) |
//! | `crash-after-secs` | off | crash lines, then exit 139 |
//! | `ignore-shutdown` | 0 | ignore `#shutdown`, SIGTERM, SIGINT |
//! | `hang-after-secs` | off | stop answering RCon/A2S and stop logging, stay alive |
//! | `rpt-spam` | 0 | extra noise lines per second |
//! | `startup-delay-ms` | 500 | start → `Host identity created.` |
//! | `max-part` | 1000 | RCon multi-part chunk size |
//! | `drop-every` | 0 | drop every Nth outgoing RCon datagram |
//! | `followup` | 0 | send `Connected to BE Master` after replies that printed no message; not real-server behaviour, only for PyPI rcon 2.4.9 (`-sim-followup=1`) |
//! | `ascii-names` | 0 | ASCII-only player names (rcon 2.4.9 cannot decode UTF-8) |
//! | `session-timeout-secs` | 45 | RCon idle timeout |
//! | `msg-resend-ms` | 2000 | server message resend interval |
//!
//! Numeric knobs have sane ranges (`arma::args::KNOB_RANGES`); a value outside its
//! range, or one that is not a number, ends the process with exit code 2 and an
//! `arma3server-sim: ...` line on stderr.

pub mod arma;
