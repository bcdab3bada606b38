//! Where recordings live: a file per recording under the recordings directory, in a folder per
//! application (`APPLICATION_ID/RECORDING_UUID.EXT`), so an application's JWT reaches its own
//! files and no other's; and the URL applications fetch them from (`GET /v1/files/{id}`).

/// The file of recording `id` of `owner` (an application id), relative to the recordings
/// directory.
pub fn path(owner: &str, id: &str, extension: &str) -> String {
    format!("{owner}/{id}.{extension}")
}

/// The `recording_url` of recording `id` on the API at `base`.
pub fn url(base: &str, id: &str) -> String {
    format!("{}/v1/files/{id}", base.trim_end_matches('/'))
}

/// Whether `name` is one plain path component (a file or folder name we made): letters,
/// digits, `-`, `_` and a single inner `.`; never empty, `.` or `..`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
}

/// Whether `relative` is safe to join to the recordings directory: plain names joined by `/`.
pub fn is_safe_relative(relative: &str) -> bool {
    relative.split('/').all(is_plain_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_urls_and_safety() {
        let p = path("app-1", "0d3f6c1a-1111-2222-3333-444455556666", "mp3");
        assert_eq!(p, "app-1/0d3f6c1a-1111-2222-3333-444455556666.mp3");
        assert!(is_safe_relative(&p));
        assert_eq!(url("https://vb.example/", "abc"), "https://vb.example/v1/files/abc");
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "a/../b", "", "a/.hidden", "a/b c", "a\\b"] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
    }
}
