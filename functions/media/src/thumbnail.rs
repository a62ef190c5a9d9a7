//! Thumbnails for uploaded images, stored beside the original as `…/thumbnail.jpg`.

use caas_shared::domain::model::Attachment;
use caas_shared::ports::blob::Blobs;
use caas_shared::{Error, Result};
use image::{ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// The longest side of a thumbnail, in pixels.
const EDGE: u32 = 256;
/// Decoding a larger image could exhaust the function's memory (a decompression bomb).
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
const MAX_SOURCE_BYTES: u64 = 40 * 1024 * 1024;

fn format_of(content_type: &str) -> Option<ImageFormat> {
    match content_type.split(';').next().unwrap_or_default().trim() {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" | "image/jpg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Makes and stores the thumbnail of an image attachment; returns its key. Files that are not images
/// (or that do not decode as the image they claim to be) simply get no thumbnail.
pub async fn create(blobs: &dyn Blobs, attachment: &Attachment) -> Result<Option<String>> {
    let Some(format) = format_of(&attachment.content_type) else {
        return Ok(None);
    };
    if attachment.size > MAX_SOURCE_BYTES {
        return Ok(None);
    }
    let Some(original) = blobs.get(&attachment.key).await? else {
        return Err(Error::Conflict("the upload disappeared while completing it".into()));
    };
    let encoded = tokio::task::spawn_blocking(move || render(&original, format))
        .await
        .map_err(|e| Error::Internal(format!("thumbnail task: {e}")))?;
    let jpeg = match encoded {
        Ok(jpeg) => jpeg,
        Err(reason) => {
            tracing::warn!(attachment_id = %attachment.id, %reason, "no thumbnail: the image does not decode");
            return Ok(None);
        }
    };
    let key = attachment.key.replace("/original", "/thumbnail.jpg");
    blobs.put(&key, jpeg, "image/jpeg").await?;
    Ok(Some(key))
}

fn render(original: &[u8], format: ImageFormat) -> Result<Vec<u8>, image::ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(original), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let thumbnail = reader.decode()?.thumbnail(EDGE, EDGE).into_rgb8();
    let mut jpeg = Vec::new();
    thumbnail.write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)?;
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_shrink_to_a_jpeg_and_garbage_is_refused() {
        let mut png = Vec::new();
        image::RgbImage::from_pixel(800, 400, image::Rgb([200, 30, 30]))
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let jpeg = render(&png, ImageFormat::Png).unwrap();
        let thumbnail = image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (256, 128));
        assert!(render(b"not a png", ImageFormat::Png).is_err());
    }
}
