//! How user files are served so that none of them can run script on any origin they are served from:
//! only types a browser renders without scripting are shown inline; everything else downloads as an
//! attachment, always with `nosniff` so a browser never guesses a more dangerous type, and under a CSP
//! that allows nothing where the platform serves the bytes itself.

/// Types shown inline: images, audio and video a browser decodes without running anything, and plain
/// text. Notably absent: `image/svg+xml` and `text/html` (they run script), `application/pdf` (viewer
/// scripting).
pub const SAFE_INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "audio/aac",
    "audio/mp4",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "text/plain",
];

/// Types a family pattern (`image/*`) never admits, because a browser would run script in them; an app
/// that really wants one must list it exactly.
pub const SCRIPTABLE_TYPES: &[&str] = &["image/svg+xml", "text/html", "application/xhtml+xml", "text/xml"];

/// `X-Content-Type-Options` on every served file.
pub const NOSNIFF: &str = "nosniff";

/// `Content-Security-Policy` where the platform serves the bytes itself: no script, no plugin, no
/// subresource, and a sandbox, whatever the file is.
pub const FILE_CSP: &str = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox";

/// A content type's essence: parameters dropped, trimmed, lower-cased (`Image/PNG; q=1` → `image/png`).
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The `Content-Disposition` a file of `content_type` is served with: `inline` only for
/// [`SAFE_INLINE_TYPES`], else `attachment`; the filename is reduced to safe ASCII.
pub fn content_disposition(content_type: &str, filename: &str) -> String {
    let kind = if SAFE_INLINE_TYPES.contains(&essence(content_type).as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    format!("{kind}; filename=\"{safe}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_never_admit_scriptable_types() {
        let limits = crate::domain::model::MediaLimits::default();
        assert!(limits.allows("image/png"));
        assert!(!limits.allows("image/svg+xml"));
        assert!(!limits.allows("IMAGE/SVG+XML; charset=utf-8"));
        let listed = crate::domain::model::MediaLimits {
            allowed_content_types: vec!["image/svg+xml".into()],
            ..Default::default()
        };
        assert!(
            listed.allows("image/svg+xml"),
            "an exact entry is the app's explicit choice"
        );
    }

    #[test]
    fn only_safe_types_are_inline_and_filenames_cannot_break_the_header() {
        assert_eq!(content_disposition("image/PNG", "a.png"), "inline; filename=\"a.png\"");
        assert_eq!(
            content_disposition("image/svg+xml", "x.svg"),
            "attachment; filename=\"x.svg\""
        );
        assert!(content_disposition("text/html; charset=utf-8", "x").starts_with("attachment"));
        assert!(content_disposition("application/pdf", "x").starts_with("attachment"));
        assert_eq!(
            content_disposition("text/plain", "a\"b\r\nSet-Cookie: x;é.txt"),
            "inline; filename=\"a_b__Set-Cookie: x__.txt\""
        );
    }
}
