//! `desktop-probe`: what `scripts/smoke-desktop.sh` uses to look at and drive the desktop app the way
//! a desktop session would, on a bare Xvfb server with a private D-Bus session (no window manager,
//! no panel):
//!
//! ```text
//! desktop-probe tray-host                 # be the session's tray host (org.kde.StatusNotifierWatcher);
//!                                         # prints "item SENDER PATH" for every icon that registers
//! desktop-probe menu SENDER PATH          # print the icon's menu, one item per line
//! desktop-probe click SENDER PATH LABEL   # activate the menu item labelled LABEL, as a click would
//! desktop-probe window TITLE              # print the top-level window's state: viewable, unmapped or absent
//! desktop-probe close TITLE               # ask the window to close, as a window manager's close button does
//! ```
//!
//! Menu lines: `---` for a separator, `[x] ` / `[ ] ` before a check item, ` (disabled)` after an item
//! that cannot be clicked.
//!
//! Linux only (StatusNotifierItem + dbusmenu over D-Bus, Xlib). It is a test tool, not part of the
//! app; it exits with status 1 and a message on stderr when something is not as expected.

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["tray-host"] => linux::tray_host(),
        ["menu", sender, path] => linux::print_menu(sender, path),
        ["click", sender, path, label] => linux::click(sender, path, label),
        ["window", title] => linux::window_state(title).map(|state| println!("{state}")),
        ["close", title] => linux::close_window(title),
        _ => Err("usage: desktop-probe tray-host | menu SENDER PATH | click SENDER PATH LABEL | window TITLE | close TITLE".into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("desktop-probe: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("desktop-probe: Linux only");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::io::Write as _;
    use zbus::blocking::{Connection, Proxy};
    use zbus::message::Header;
    use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    /// A StatusNotifierWatcher that accepts every icon and says a host is there: enough for
    /// libayatana-appindicator to export its icon and menu instead of falling back to an XEmbed
    /// icon that nothing would show.
    struct Watcher {
        items: Vec<String>,
    }

    #[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
    impl Watcher {
        fn register_status_notifier_item(
            &mut self,
            service: &str,
            #[zbus(header)] header: Header<'_>,
        ) {
            let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
            // Ayatana passes its object path; other libraries pass their bus name.
            let (sender, path) = if service.starts_with('/') {
                (sender, service.to_string())
            } else {
                (service.to_string(), "/StatusNotifierItem".to_string())
            };
            println!("item {sender} {path}");
            let _ = std::io::stdout().flush();
            self.items.push(format!("{sender}{path}"));
        }

        fn register_status_notifier_host(&mut self, _service: &str) {}

        #[zbus(property)]
        fn is_status_notifier_host_registered(&self) -> bool {
            true
        }

        #[zbus(property)]
        fn protocol_version(&self) -> i32 {
            0
        }

        #[zbus(property)]
        fn registered_status_notifier_items(&self) -> Vec<String> {
            self.items.clone()
        }
    }

    pub fn tray_host() -> Result<()> {
        let _connection = zbus::blocking::connection::Builder::session()?
            .name("org.kde.StatusNotifierWatcher")?
            .serve_at("/StatusNotifierWatcher", Watcher { items: Vec::new() })?
            .build()?;
        println!("tray host ready");
        std::io::stdout().flush()?;
        loop {
            std::thread::park();
        }
    }

    /// A dbusmenu layout node on the wire: `(ia{sv}av)`.
    type RawItem = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

    /// One dbusmenu item: id, properties, children.
    struct Item {
        id: i32,
        props: HashMap<String, OwnedValue>,
        children: Vec<Item>,
    }

    impl Item {
        fn parse(value: OwnedValue) -> Result<Item> {
            let (id, props, children): RawItem = value.try_into()?;
            Ok(Item {
                id,
                props,
                children: children
                    .into_iter()
                    .map(Item::parse)
                    .collect::<Result<_>>()?,
            })
        }

        fn string(&self, key: &str) -> Option<String> {
            self.props
                .get(key)
                .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
        }

        fn label(&self) -> String {
            self.string("label").unwrap_or_default().replace('_', "")
        }

        fn line(&self) -> String {
            if self.string("type").as_deref() == Some("separator") {
                return "---".to_string();
            }
            let mut line = String::new();
            if self.string("toggle-type").as_deref() == Some("checkmark") {
                let on = self
                    .props
                    .get("toggle-state")
                    .and_then(|v| i32::try_from(v).ok())
                    == Some(1);
                line.push_str(if on { "[x] " } else { "[ ] " });
            }
            line.push_str(&self.label());
            if self
                .props
                .get("enabled")
                .and_then(|v| bool::try_from(v).ok())
                == Some(false)
            {
                line.push_str(" (disabled)");
            }
            line
        }
    }

    fn menu(connection: &Connection, sender: &str, path: &str) -> Result<(Proxy<'static>, Item)> {
        let item = Proxy::new(
            connection,
            sender.to_string(),
            path.to_string(),
            "org.kde.StatusNotifierItem",
        )?;
        let menu_path: OwnedObjectPath = item.get_property("Menu")?;
        let menu = Proxy::new(
            connection,
            sender.to_string(),
            menu_path,
            "com.canonical.dbusmenu",
        )?;
        let (_revision, layout): (u32, RawItem) =
            menu.call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))?;
        let (id, props, children) = layout;
        let root = Item {
            id,
            props,
            children: children
                .into_iter()
                .map(Item::parse)
                .collect::<Result<_>>()?,
        };
        Ok((menu, root))
    }

    pub fn print_menu(sender: &str, path: &str) -> Result<()> {
        let connection = Connection::session()?;
        let (_, root) = menu(&connection, sender, path)?;
        for item in &root.children {
            println!("{}", item.line());
        }
        Ok(())
    }

    pub fn click(sender: &str, path: &str, label: &str) -> Result<()> {
        let connection = Connection::session()?;
        let (menu, root) = menu(&connection, sender, path)?;
        let item = root
            .children
            .iter()
            .find(|item| item.label() == label)
            .ok_or_else(|| format!("no menu item labelled {label:?}"))?;
        menu.call_method("Event", &(item.id, "clicked", Value::from(0i32), 0u32))?;
        Ok(())
    }

    /// Top-level windows are children of the root window (Xvfb runs no window manager that would
    /// reparent them); the first whose WM_NAME is `title`.
    fn find_window(display: *mut x11::xlib::Display, title: &str) -> Option<x11::xlib::Window> {
        use x11::xlib;
        // SAFETY: `display` is an open connection; every pointer Xlib hands out is freed with XFree.
        unsafe {
            let root = xlib::XDefaultRootWindow(display);
            let (mut root_ret, mut parent) = (0, 0);
            let mut children: *mut xlib::Window = std::ptr::null_mut();
            let mut count = 0u32;
            if xlib::XQueryTree(
                display,
                root,
                &mut root_ret,
                &mut parent,
                &mut children,
                &mut count,
            ) == 0
            {
                return None;
            }
            let windows = if children.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(children, count as usize)
            };
            let mut found = None;
            for &window in windows {
                let mut name: *mut std::os::raw::c_char = std::ptr::null_mut();
                if xlib::XFetchName(display, window, &mut name) != 0 && !name.is_null() {
                    let matches = std::ffi::CStr::from_ptr(name).to_string_lossy() == title;
                    xlib::XFree(name.cast());
                    if matches {
                        found = Some(window);
                        break;
                    }
                }
            }
            if !children.is_null() {
                xlib::XFree(children.cast());
            }
            found
        }
    }

    fn with_display<T>(f: impl FnOnce(*mut x11::xlib::Display) -> Result<T>) -> Result<T> {
        // SAFETY: XOpenDisplay(NULL) reads $DISPLAY; the connection is closed below.
        let display = unsafe { x11::xlib::XOpenDisplay(std::ptr::null()) };
        if display.is_null() {
            return Err("cannot open the X display ($DISPLAY)".into());
        }
        let result = f(display);
        // SAFETY: opened above, not used afterwards.
        unsafe { x11::xlib::XCloseDisplay(display) };
        result
    }

    pub fn window_state(title: &str) -> Result<&'static str> {
        with_display(|display| {
            let Some(window) = find_window(display, title) else {
                return Ok("absent");
            };
            // SAFETY: a zeroed XWindowAttributes is a valid out-parameter.
            let mut attributes: x11::xlib::XWindowAttributes = unsafe { std::mem::zeroed() };
            // SAFETY: `window` came from XQueryTree on this display.
            if unsafe { x11::xlib::XGetWindowAttributes(display, window, &mut attributes) } == 0 {
                return Ok("absent");
            }
            Ok(if attributes.map_state == x11::xlib::IsViewable {
                "viewable"
            } else {
                "unmapped"
            })
        })
    }

    pub fn close_window(title: &str) -> Result<()> {
        use x11::xlib;
        with_display(|display| {
            let window =
                find_window(display, title).ok_or_else(|| format!("no window titled {title:?}"))?;
            // SAFETY: atoms and the event are plain data; the window came from XQueryTree.
            unsafe {
                let protocols = xlib::XInternAtom(display, c"WM_PROTOCOLS".as_ptr(), xlib::False);
                let delete = xlib::XInternAtom(display, c"WM_DELETE_WINDOW".as_ptr(), xlib::False);
                let mut data = xlib::ClientMessageData::new();
                data.set_long(0, delete as std::os::raw::c_long);
                data.set_long(1, xlib::CurrentTime as std::os::raw::c_long);
                let message = xlib::XClientMessageEvent {
                    type_: xlib::ClientMessage,
                    serial: 0,
                    send_event: xlib::True,
                    display,
                    window,
                    message_type: protocols,
                    format: 32,
                    data,
                };
                let mut event = xlib::XEvent {
                    client_message: message,
                };
                if xlib::XSendEvent(display, window, xlib::False, xlib::NoEventMask, &mut event)
                    == 0
                {
                    return Err("XSendEvent failed".into());
                }
                xlib::XFlush(display);
            }
            Ok(())
        })
    }
}
