//! The dynamic QR code: the SVG is well-formed and scalable, and the PNG decodes back to the
//! exact payment URL with a real scanner (zbarimg).

mod common;

use till_receipts::{qr_png, qr_svg};

const URL: &str = "https://pay.sandbox.invalid/pay/3f9a2c4e5b6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d?lang=en&x=1";

#[test]
fn svg_is_xml_with_a_viewbox_and_no_fixed_size() {
    let svg = qr_svg(URL).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let view_box: Vec<u32> = root
        .attribute("viewBox")
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(&view_box[..2], &[0, 0]);
    assert_eq!(view_box[2], view_box[3], "square");
    // Version 1 is 21 modules; the quiet zone adds 4 on each side.
    assert!(
        view_box[2] >= 21 + 8 && (view_box[2] - 8 - 21).is_multiple_of(4),
        "{view_box:?}"
    );
    assert!(root.attribute("width").is_none() && root.attribute("height").is_none());
    assert_eq!(root.attribute("shape-rendering"), Some("crispEdges"));
    let path = root.children().find(|n| n.has_tag_name("path")).unwrap();
    assert!(path.attribute("d").unwrap().len() > 100);
}

#[test]
fn svg_scans_back_to_the_url() {
    if !common::require("svg_scans_back_to_the_url", &["zbarimg"]) {
        return;
    }
    // Rasterise the SVG's own path data (runs of whole modules) into a bitmap and scan it:
    // this checks the drawing, not just the XML.
    let svg = qr_svg(URL).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let size: u32 = doc
        .root_element()
        .attribute("viewBox")
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let d = doc
        .descendants()
        .find(|n| n.has_tag_name("path"))
        .unwrap()
        .attribute("d")
        .unwrap();
    let scale = 6;
    let mut img = image::GrayImage::from_pixel(size * scale, size * scale, image::Luma([255]));
    for run in d.split('M').filter(|s| !s.is_empty()) {
        // "x yhLENv1h-LENz"
        let (xy, rest) = run.split_once('h').unwrap();
        let (x, y) = xy.split_once(' ').unwrap();
        let (x, y): (u32, u32) = (x.parse().unwrap(), y.parse().unwrap());
        let len: u32 = rest.split_once('v').unwrap().0.parse().unwrap();
        for px in x * scale..(x + len) * scale {
            for py in y * scale..(y + 1) * scale {
                img.put_pixel(px, py, image::Luma([0]));
            }
        }
    }
    let file = common::artifacts().join("qr-from-svg.png");
    img.save(&file).unwrap();
    assert_eq!(common::zbar(&file), vec![URL.to_string()]);
}

#[test]
fn png_decodes_and_scans_back_to_the_exact_url() {
    let png = qr_png(URL, 4).unwrap();
    let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .unwrap()
        .to_luma8();
    assert_eq!(img.width(), img.height());
    assert_eq!(img.width() % 4, 0, "whole-pixel modules");
    // Quiet zone: the first 16 pixel rows and columns are white.
    assert!((0..16).all(
        |i| img.get_pixel(i, i).0 == [255] && img.get_pixel(i, img.height() - 1 - i).0 == [255]
    ));
    // The finder pattern starts right after the quiet zone.
    assert_eq!(img.get_pixel(16, 16).0, [0]);

    if !common::require("png_decodes_and_scans_back_to_the_exact_url", &["zbarimg"]) {
        return;
    }
    let file = common::artifacts().join("qr.png");
    std::fs::write(&file, &png).unwrap();
    assert_eq!(common::zbar(&file), vec![URL.to_string()]);
}

#[test]
fn module_size_scales_the_png() {
    let small = image::load_from_memory(&qr_png(URL, 1).unwrap()).unwrap();
    let big = image::load_from_memory(&qr_png(URL, 10).unwrap()).unwrap();
    assert_eq!(big.width(), small.width() * 10);
}
