//! A fake receipt printer for the tests, and a picture of what it printed.
//!
//! [`FakePrinter`] listens on a loopback TCP port (port 0) like a network printer's raw port 9100:
//! it answers ESC/POS real-time status queries (`DLE EOT n`) the way an Epson printer does, and
//! records every other byte. Its [`Mode`] makes it misbehave: out of paper, refusing connections,
//! or dropping the connection in the middle of a job. [`FifoPrinter`] reads a FIFO, as a USB
//! printer's device file would be read by the printer. [`render_png`] draws a recorded stream as
//! it would come out of an 80 mm printer.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the fake printer behaves for new connections and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers "ready" and prints everything.
    Ready,
    /// Answers "paper end" to `DLE EOT 4` (and offline with paper end as the cause).
    PaperOut,
    /// Accepts a connection and closes it at once (a printer going away).
    Refuse,
    /// Prints this many bytes of the next job, then drops the connection; back to `Ready` after.
    DropAfter(usize),
}

struct State {
    mode: Mode,
    /// Everything printed, status queries left out, in arrival order.
    recorded: Vec<u8>,
    /// Connections accepted.
    connections: usize,
}

/// A network receipt printer on `127.0.0.1:<port>`.
pub struct FakePrinter {
    /// `tcp://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakePrinter {
    /// Starts the printer in `Ready` mode.
    pub fn start() -> Result<FakePrinter> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("tcp://{}", listener.local_addr()?);
        listener.set_nonblocking(true)?;
        let state = Arc::new(Mutex::new(State { mode: Mode::Ready, recorded: Vec::new(), connections: 0 }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || serve(stream, s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(FakePrinter { url, state, stop })
    }

    /// Changes how it behaves from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).mode = mode;
    }

    /// Everything printed so far.
    pub fn recorded(&self) -> Vec<u8> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).recorded.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).connections
    }

    /// The jobs printed so far, each from its `ESC @`; `cut: false` for one cut short.
    pub fn papers(&self) -> Vec<till_printer::decode::Paper> {
        till_printer::decode::jobs(&self.recorded())
    }
}

impl Drop for FakePrinter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One connection: answer status queries, record the rest, misbehave as the mode says.
fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mode = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.connections += 1;
        s.mode
    };
    if mode == Mode::Refuse {
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut pending: Vec<u8> = Vec::new();
    let mut job_bytes = 0usize;
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut i = 0;
        while i < pending.len() {
            if pending[i] == 0x10 && pending.get(i + 1) == Some(&0x04) {
                let Some(&q) = pending.get(i + 2) else { break };
                let mode = state.lock().unwrap_or_else(|e| e.into_inner()).mode;
                let paper_out = mode == Mode::PaperOut;
                let answer = match q {
                    1 => 0x12 | if paper_out { 0x08 } else { 0 },
                    2 => 0x12 | if paper_out { 0x20 } else { 0 },
                    4 => 0x12 | if paper_out { 0x60 } else { 0 },
                    _ => 0x12,
                };
                if stream.write_all(&[answer]).is_err() {
                    return;
                }
                i += 3;
                continue;
            }
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            if let Mode::DropAfter(limit) = s.mode {
                if job_bytes >= limit {
                    s.mode = Mode::Ready;
                    drop(s);
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
            if s.mode == Mode::PaperOut {
                // A printer without paper prints nothing it is sent.
                i += 1;
                continue;
            }
            s.recorded.push(pending[i]);
            job_bytes += 1;
            drop(s);
            i += 1;
        }
        pending.drain(..i);
    }
}

/// A FIFO standing for a printer's device file; a thread reads it like the printer would.
pub struct FifoPrinter {
    /// `file:///…/printer.fifo`.
    pub url: String,
    /// The FIFO.
    pub path: PathBuf,
    recorded: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl FifoPrinter {
    /// Creates `dir/printer.fifo` and starts reading it.
    pub fn start(dir: &Path) -> Result<FifoPrinter> {
        let path = dir.join("printer.fifo");
        let status = std::process::Command::new("mkfifo").arg(&path).status().context("mkfifo")?;
        anyhow::ensure!(status.success(), "mkfifo failed");
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, r, st) = (path.clone(), recorded.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                // Blocks until a writer opens it; reads the job until the writer closes.
                let Ok(mut f) = std::fs::File::open(&p) else { return };
                let mut job = Vec::new();
                let _ = f.read_to_end(&mut job);
                r.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&job);
            }
        });
        Ok(FifoPrinter { url: format!("file://{}", path.display()), path, recorded, stop })
    }

    /// Everything read so far.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for FifoPrinter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock the reader if it waits for a writer.
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
            let _ = f.write_all(b"");
        }
    }
}

/// Draws an ESC/POS stream as an 80 mm printer (576 dots, font A 12×24) would print it: text in
/// DejaVu Sans Mono, bold, double size, alignment, native QR codes, and a dashed line at each cut.
pub fn render_png(bytes: &[u8], columns: usize, out: &Path) -> Result<()> {
    use till_printer::decode::{decode, Event};
    let font_path = ["/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "crates/receipts/fonts/DejaVuSans.ttf"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::iter::once(Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/receipts/fonts/DejaVuSans.ttf")))
        .find(|p| p.exists())
        .context("no font to draw the receipt with")?;
    let bold_path = font_path.with_file_name("DejaVuSansMono-Bold.ttf");
    let load = |p: &Path| -> Result<fontdue::Font> {
        fontdue::Font::from_bytes(std::fs::read(p)?, fontdue::FontSettings::default()).map_err(|e| anyhow::anyhow!(e))
    };
    let regular = load(&font_path)?;
    let bold = if bold_path.exists() { load(&bold_path)? } else { load(&font_path)? };

    let margin = 24u32;
    let cell_w = 576 / columns as u32;
    let cell_h = 26u32;
    let width = 576 + 2 * margin;
    // First pass: height.
    let events = decode(bytes);
    let mut height = margin;
    for e in &events {
        match e {
            Event::Line(l) => height += if l.double { 2 * cell_h } else { cell_h },
            Event::Qr(data) => {
                let code = qrcode::QrCode::new(data.as_bytes())?;
                height += (code.width() as u32 + 8) * 6;
            }
            Event::Cut => height += 3 * cell_h,
            _ => {}
        }
    }
    height += margin;
    let mut img = image::GrayImage::from_pixel(width, height, image::Luma([255]));
    let mut y = margin;
    for e in &events {
        match e {
            Event::Line(l) => {
                let scale = if l.double { 2 } else { 1 };
                let (cw, ch) = (cell_w * scale, cell_h * scale);
                let chars: Vec<char> = l.text.chars().collect();
                let text_w = chars.len() as u32 * cw;
                let x0 = match l.align {
                    till_printer::Align::Left => margin,
                    till_printer::Align::Center => margin + (576u32.saturating_sub(text_w)) / 2,
                    till_printer::Align::Right => margin + 576u32.saturating_sub(text_w),
                };
                let font = if l.bold { &bold } else { &regular };
                let px = 20.0 * scale as f32;
                for (i, c) in chars.iter().enumerate() {
                    let (m, bitmap) = font.rasterize(*c, px);
                    let gx = x0 as i32 + (i as u32 * cw) as i32 + m.xmin.max(0);
                    let baseline = y as i32 + (ch as f32 * 0.78) as i32;
                    let gy = baseline - m.height as i32 - m.ymin;
                    for row in 0..m.height {
                        for col in 0..m.width {
                            let v = bitmap[row * m.width + col];
                            let (px_x, px_y) = (gx + col as i32, gy + row as i32);
                            if v > 0 && px_x >= 0 && px_y >= 0 && (px_x as u32) < width && (px_y as u32) < height {
                                let p = img.get_pixel_mut(px_x as u32, px_y as u32);
                                p.0[0] = p.0[0].min(255 - v);
                            }
                        }
                    }
                }
                y += ch;
            }
            Event::Qr(data) => {
                let code = qrcode::QrCode::new(data.as_bytes())?;
                let n = code.width() as u32;
                let module = 6u32;
                let side = (n + 8) * module;
                let x0 = margin + (576 - side) / 2 + 4 * module;
                let colors = code.to_colors();
                for (idx, color) in colors.iter().enumerate() {
                    if *color == qrcode::Color::Dark {
                        let (cx, cy) = (idx as u32 % n, idx as u32 / n);
                        for dy in 0..module {
                            for dx in 0..module {
                                img.put_pixel(x0 + cx * module + dx, y + 4 * module + cy * module + dy, image::Luma([0]));
                            }
                        }
                    }
                }
                y += side;
            }
            Event::Cut => {
                y += cell_h;
                let mut x = 0;
                while x < width {
                    for dx in 0..8.min(width - x) {
                        img.put_pixel(x + dx, y + cell_h / 2, image::Luma([120]));
                    }
                    x += 14;
                }
                y += 2 * cell_h;
            }
            _ => {}
        }
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    img.save(out)?;
    Ok(())
}
