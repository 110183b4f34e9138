//! Texts that leave the agent (start errors, state reasons, request errors) reach API
//! callers. An operator must not learn the host's layout from them ("No such file or
//! directory" for a path they chose is a probe), so absolute paths become `<path>`,
//! OS error numbers go, control characters become spaces and the length is capped.
//! Whoever builds such a text logs the full one locally first.

/// Longest text passed on, in characters.
const MAX_CHARS: usize = 300;

/// `text` without absolute paths (`/…`, `C:\…`, `\\server\…`), ` (os error N)`
/// suffixes and control characters, at most [`MAX_CHARS`] characters.
pub fn path_free(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len().min(MAX_CHARS * 4));
    let mut i = 0;
    while i < chars.len() {
        if let Some(end) = os_error_end(&chars, i) {
            i = end;
            continue;
        }
        let at_boundary = i == 0 || is_boundary(chars[i - 1]);
        if at_boundary && starts_path(&chars[i..]) {
            let mut end = i;
            while end < chars.len() && !ends_path(chars[end]) {
                end += 1;
            }
            // A trailing `:` (as in "path: reason") belongs to the sentence.
            let keep_colon = end > i && chars[end - 1] == ':';
            out.push_str("<path>");
            if keep_colon {
                out.push(':');
            }
            i = end;
            continue;
        }
        let c = chars[i];
        out.push(if c.is_control() { ' ' } else { c });
        i += 1;
    }
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS - 1).collect();
        out.push('…');
    }
    out
}

fn is_boundary(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '(' | '[' | '{' | '=' | ',' | '`')
}

fn starts_path(rest: &[char]) -> bool {
    match rest {
        ['/', ..] => true,
        ['\\', '\\', ..] => true,
        [d, ':', '\\' | '/', ..] => d.is_ascii_alphabetic(),
        _ => false,
    }
}

fn ends_path(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ']' | '}' | ',' | '`') || c.is_control()
}

/// The end of " (os error N)" starting at `i` (with its leading space), if there.
fn os_error_end(chars: &[char], i: usize) -> Option<usize> {
    let pattern: Vec<char> = " (os error ".chars().collect();
    if chars.get(i..i + pattern.len())? != pattern.as_slice() {
        return None;
    }
    let mut j = i + pattern.len();
    while chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
        j += 1;
    }
    (chars.get(j) == Some(&')')).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_os_errors_are_removed() {
        assert_eq!(
            path_free("server folder /tmp/x/a-file/srv1: Not a directory (os error 20)"),
            "server folder <path>: Not a directory"
        );
        assert_eq!(
            path_free("spawning \"/opt/a3/arma3server_x64\": No such file (os error 2)"),
            "spawning \"<path>\": No such file"
        );
        assert_eq!(path_free("C:\\a3\\x.exe is gone"), "<path> is gone");
        assert_eq!(
            path_free("port 2302/udp is in use"),
            "port 2302/udp is in use"
        );
        assert_eq!(
            path_free("battleye/beserver.cfg: is a symlink"),
            "battleye/beserver.cfg: is a symlink"
        );
        assert_eq!(path_free("a\nb\u{1b}[31m"), "a b [31m");
        let long = "x".repeat(1000);
        assert_eq!(path_free(&long).chars().count(), MAX_CHARS);
    }
}
