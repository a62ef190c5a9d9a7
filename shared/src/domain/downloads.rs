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

/// Where a file is served from, which decides what may be shown inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// The platform itself, which sends [`NOSNIFF`] and [`FILE_CSP`] with every file.
    Platform,
    /// A presigned object-store URL: S3 takes only a disposition and a type as overrides, so no
    /// `nosniff` — only media types a browser decodes without sniffing are inline there, and
    /// `text/plain` downloads (an old or odd browser could sniff it into markup).
    ObjectStore,
}

/// The `Content-Disposition` a file of `content_type` is served with by `server`: `inline` only for
/// [`SAFE_INLINE_TYPES`] (less `text/plain` from the object store), else `attachment`; the filename is
/// reduced to safe ASCII.
pub fn content_disposition(server: Server, content_type: &str, filename: &str) -> String {
    let essence = essence(content_type);
    let inline =
        SAFE_INLINE_TYPES.contains(&essence.as_str()) && !(server == Server::ObjectStore && essence == "text/plain");
    let kind = if inline { "inline" } else { "attachment" };
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
        let content_disposition = |kind: &str, name: &str| content_disposition(Server::Platform, kind, name);
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

    #[test]
    fn without_nosniff_text_downloads() {
        assert!(content_disposition(Server::ObjectStore, "text/plain", "a.txt").starts_with("attachment"));
        assert!(content_disposition(Server::ObjectStore, "image/png", "a.png").starts_with("inline"));
        assert!(content_disposition(Server::ObjectStore, "text/html", "a.html").starts_with("attachment"));
    }
}
