//! A QR code of the invite link, drawn as SVG in the page (pure Rust, no network, no image).

use leptos::prelude::*;
use qrcodegen::{QrCode, QrCodeEcc};

/// Light modules around the symbol, as the QR standard asks, so scanners find its edges.
const QUIET_ZONE: i32 = 4;

/// The QR symbol for `text` as an SVG path over a `size × size` grid (quiet zone included):
/// one unit square per dark module. `None` if the text does not fit in a QR code.
pub fn qr_path(text: &str) -> Option<(i32, String)> {
    // Medium error correction: survives a smudged screen or a glare spot.
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = qr.size() + 2 * QUIET_ZONE;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE));
            }
        }
    }
    Some((size, path))
}

/// The QR code of `text`, dark on light whatever the colour scheme (scanners expect that).
#[component]
pub fn QrCodeImage(text: String, label: &'static str) -> impl IntoView {
    qr_path(&text).map(|(size, path)| {
        view! {
            <svg class="qr" role="img" aria-label=label viewBox=format!("0 0 {size} {size}") shape-rendering="crispEdges">
                <rect width=size height=size fill="#ffffff"/>
                <path d=path fill="#000000"/>
            </svg>
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rasterises the path (each `M x,y` starts one dark unit square) at 4 pixels per module and
    /// reads it back with an independent decoder, as a phone's camera would.
    fn decode(size: i32, path: &str) -> String {
        let scale = 4usize;
        let width = size as usize * scale;
        let mut dark = vec![false; width * width];
        for square in path.split('M').filter(|s| !s.is_empty()) {
            let coords = square.split('h').next().unwrap();
            let (x, y) = coords.split_once(',').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            for dy in 0..scale {
                for dx in 0..scale {
                    dark[(y * scale + dy) * width + x * scale + dx] = true;
                }
            }
        }
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(width, width, |x, y| if dark[y * width + x] { 0 } else { 255 });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "exactly one QR code in the picture");
        grids[0].decode().unwrap().1
    }

    #[test]
    fn the_qr_code_reads_back_as_the_invite_link() {
        let link = "https://chat.example/room#6DQ8P-V5Z3K-0N2WM-A7R4E-JX9HT";
        let (size, path) = qr_path(link).unwrap();
        assert_eq!(decode(size, &path), link);
    }

    #[test]
    fn the_picture_has_a_quiet_zone_of_four_light_modules() {
        let (size, path) = qr_path("https://chat.example/room#X").unwrap();
        let first = path.trim_start_matches('M').split('h').next().unwrap();
        assert_eq!(first, "4,4", "the top-left finder pattern starts inside the quiet zone");
        assert!(!path.contains(&format!(",{}h", size - 4)), "no module in the bottom quiet zone");
    }

    #[test]
    fn a_text_too_long_for_any_qr_code_has_no_picture() {
        assert!(qr_path(&"x".repeat(5000)).is_none());
    }
}
