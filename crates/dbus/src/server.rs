//! Dispatching method calls to a [`Service`], with the standard interfaces
//! (`org.freedesktop.DBus.Properties`, `.Introspectable`, `.Peer`) answered the way sd-bus
//! answers them; and the peer-to-peer listener behind systemd's `/run/systemd/private`.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_core::Stream;
use zbus::message::{Flags, Header, Type as MessageType};
use zbus::wire::Variant;
use zbus::{Connection, Guid, Message, MessageStream};

use crate::error::{
    BusError, MethodError, PROPERTY_READ_ONLY, UNKNOWN_INTERFACE, UNKNOWN_METHOD, UNKNOWN_OBJECT,
    UNKNOWN_PROPERTY,
};
use crate::object::{Call, Interface, Method, Props, Reply};

const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
const PEER: &str = "org.freedesktop.DBus.Peer";

/// What a daemon implements: which objects exist, their properties, and their methods.
pub trait Service: Send + Sync + 'static {
    /// The interfaces of the object at `path`, or `None` when there is no such object.
    fn object(&self, path: &str) -> impl Future<Output = Option<Vec<&'static Interface>>> + Send;

    /// Names of the child nodes of `path`, for introspection.
    fn children(&self, path: &str) -> impl Future<Output = Vec<String>> + Send;

    /// The current values of `iface`'s properties on the object at `path`.
    fn properties(
        &self,
        path: &str,
        iface: &'static Interface,
    ) -> impl Future<Output = Result<Props, MethodError>> + Send;

    /// The object a call to `path` addresses. Most objects have one path; daemons with
    /// caller-relative aliases (login1's `…/session/self`, which names the caller's own session)
    /// map the alias to the real path here, before any other method of this trait sees it. The
    /// default keeps `path`.
    fn resolve(
        &self,
        path: String,
        _conn: &Connection,
        _msg: &Message,
    ) -> impl Future<Output = String> + Send {
        std::future::ready(path)
    }

    /// Runs `method` of `iface`; the arguments' signature has been checked.
    fn call(
        &self,
        call: Call,
        iface: &'static Interface,
        method: &'static Method,
    ) -> impl Future<Output = Result<Reply, MethodError>> + Send;
}

/// The connections signals go out on: the bus connection and every peer-to-peer client.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    conns: Arc<Mutex<Vec<Connection>>>,
}

impl Signals {
    /// No connection yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a connection; closed ones are dropped as they are noticed.
    pub fn add(&self, conn: Connection) {
        if let Ok(mut v) = self.conns.lock() {
            v.push(conn);
        }
    }

    fn live(&self) -> Vec<Connection> {
        match self.conns.lock() {
            Ok(mut v) => {
                v.retain(|c| !c.is_closed());
                v.clone()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Emits a signal on every connection. A failure only concerns that peer, so it is logged.
    pub async fn emit<B>(&self, path: &str, iface: &str, member: &str, body: &B)
    where
        B: serde::Serialize + zbus::wire::DynamicType,
    {
        for conn in self.live() {
            if let Err(e) = conn
                .emit_signal(None::<&str>, path, iface, member, body)
                .await
            {
                tracing::debug!(signal = member, "cannot emit a signal: {e}");
            }
        }
    }

    /// Emits `org.freedesktop.DBus.Properties.PropertiesChanged` for `iface` at `path` with
    /// the new values in `changed`.
    pub async fn properties_changed(&self, path: &str, iface: &str, changed: &Props) {
        let values: HashMap<&str, &Variant<'static>> = changed.iter().collect();
        let body = (iface, values, Vec::<&str>::new());
        self.emit(path, PROPERTIES, "PropertiesChanged", &body)
            .await;
    }
}

async fn next_message(stream: &mut MessageStream) -> Option<zbus::Result<Message>> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// Answers every method call arriving on `stream` until the connection closes. Each call runs
/// in its own task, so a slow one (e.g. waiting for svmgr) never holds up the others.
pub async fn serve<S: Service>(mut stream: MessageStream, service: Arc<S>) {
    let conn = Connection::from(&stream);
    while let Some(msg) = next_message(&mut stream).await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("unreadable message: {e}");
                continue;
            }
        };
        if msg.message_type() != MessageType::MethodCall {
            continue;
        }
        let conn = conn.clone();
        let service = Arc::clone(&service);
        tokio::spawn(async move { handle(conn, service, msg).await });
    }
}

async fn handle<S: Service>(conn: Connection, service: Arc<S>, msg: Message) {
    let header = msg.header();
    let no_reply = header.primary().flags().contains(Flags::NO_REPLY_EXPECTED);
    let result = dispatch(&conn, service.as_ref(), &msg, &header).await;
    let after = match result {
        Ok(reply) => {
            let (built, after) = reply.into_parts(reply_builder(&conn, &header));
            if !no_reply {
                match built {
                    Ok(m) => send(&conn, &m).await,
                    Err(e) => {
                        let err = MethodError::failed(format!("Cannot encode the reply: {e}"));
                        send_error(&conn, &header, &err).await;
                    }
                }
            }
            after
        }
        Err(err) => {
            if !no_reply {
                send_error(&conn, &header, &err).await;
            }
            None
        }
    };
    if let Some(after) = after {
        after.await;
    }
}

fn reply_builder(conn: &Connection, header: &Header<'_>) -> zbus::message::Builder<'static> {
    let b = Message::method_return(header);
    match conn.unique_name() {
        Some(name) => b.sender(name.to_owned()),
        None => b,
    }
}

async fn send(conn: &Connection, msg: &Message) {
    if let Err(e) = conn.send(msg).await {
        tracing::debug!("cannot send a reply: {e}");
    }
}

async fn send_error(conn: &Connection, header: &Header<'_>, err: &MethodError) {
    if let Err(e) = conn
        .reply_error(header, err.name.as_str(), &err.message)
        .await
    {
        tracing::debug!("cannot send an error reply: {e}");
    }
}

async fn dispatch<S: Service>(
    conn: &Connection,
    service: &S,
    msg: &Message,
    header: &Header<'_>,
) -> Result<Reply, MethodError> {
    let path = header.path().map(|p| p.to_string()).unwrap_or_default();
    let path = service.resolve(path, conn, msg).await;
    let member = header.member().map(|m| m.to_string()).unwrap_or_default();
    let iface_name = header.interface().map(|i| i.to_string());
    let signature = header.signature().to_string_no_parens();
    let Some(ifaces) = service.object(&path).await else {
        return Err(MethodError::new(
            UNKNOWN_OBJECT,
            format!("Unknown object '{path}'."),
        ));
    };

    // The object's own interfaces first; then the standard ones every object has.
    let own = match iface_name.as_deref() {
        Some(name) => ifaces
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.method(&member).map(|m| (*i, m))),
        None => ifaces
            .iter()
            .find_map(|i| i.method(&member).map(|m| (*i, m))),
    };
    if let Some((iface, method)) = own {
        check_signature(method, &signature)?;
        let call = Call::new(conn.clone(), msg.clone(), path);
        return service.call(call, iface, method).await;
    }
    let standard = match iface_name.as_deref() {
        Some(name @ (PROPERTIES | INTROSPECTABLE | PEER)) => Some(name),
        Some(_) => None,
        None => match member.as_str() {
            "Get" | "GetAll" | "Set" => Some(PROPERTIES),
            "Introspect" => Some(INTROSPECTABLE),
            "Ping" | "GetMachineId" => Some(PEER),
            _ => None,
        },
    };
    match standard {
        Some(PROPERTIES) => properties(service, msg, &path, &ifaces, &member, &signature).await,
        Some(INTROSPECTABLE) if member == "Introspect" => {
            let children = service.children(&path).await;
            Ok(Reply::new(introspect(&ifaces, &children)))
        }
        Some(PEER) if member == "Ping" => Ok(Reply::empty()),
        Some(PEER) if member == "GetMachineId" => {
            let id = std::fs::read_to_string("/etc/machine-id")
                .map(|s| s.trim().to_owned())
                .map_err(|e| MethodError::failed(format!("Cannot read /etc/machine-id: {e}")))?;
            Ok(Reply::new(id))
        }
        _ => match iface_name {
            Some(name)
                if !ifaces.iter().any(|i| i.name == name)
                    && ![PROPERTIES, INTROSPECTABLE, PEER].contains(&name.as_str()) =>
            {
                Err(MethodError::new(
                    UNKNOWN_INTERFACE,
                    format!("Unknown interface '{name}'."),
                ))
            }
            name => Err(MethodError::new(
                UNKNOWN_METHOD,
                format!(
                    "Unknown method '{member}' or interface '{}'.",
                    name.unwrap_or_default()
                ),
            )),
        },
    }
}

fn check_signature(method: &Method, got: &str) -> Result<(), MethodError> {
    let want = method.input_signature();
    if want == got {
        Ok(())
    } else {
        Err(MethodError::invalid_args(format!(
            "Invalid arguments '{got}' to call {}(), expecting '{want}'.",
            method.name
        )))
    }
}

async fn properties<S: Service>(
    service: &S,
    msg: &Message,
    path: &str,
    ifaces: &[&'static Interface],
    member: &str,
    signature: &str,
) -> Result<Reply, MethodError> {
    let find = |name: &str| {
        ifaces
            .iter()
            .copied()
            .find(|i| i.name == name)
            .ok_or_else(|| {
                MethodError::new(UNKNOWN_INTERFACE, format!("Unknown interface '{name}'."))
            })
    };
    let body = msg.body();
    let bad_args = |e: zbus::Error| MethodError::invalid_args(format!("Invalid arguments: {e}"));
    match member {
        "Get" if signature == "ss" => {
            let (iface, name): (String, String) = body.deserialize().map_err(bad_args)?;
            let iface = find(&iface)?;
            if iface.property(&name).is_none() {
                return Err(unknown_property(&name));
            }
            let props = service.properties(path, iface).await?;
            let value = props
                .get(&name)
                .cloned()
                .ok_or_else(|| unknown_property(&name))?;
            Ok(Reply::new(value))
        }
        // An empty interface name means every interface of the object (sd-bus semantics, and
        // what `bus_map_all_properties()` in every systemd client asks for).
        "GetAll" if signature == "s" => {
            let iface: String = body.deserialize().map_err(bad_args)?;
            let selected: Vec<&'static Interface> = if iface.is_empty() {
                ifaces.to_vec()
            } else {
                vec![find(&iface)?]
            };
            let mut all: HashMap<String, Variant<'static>> = HashMap::new();
            for iface in selected {
                for (name, value) in service.properties(path, iface).await?.iter() {
                    all.insert(name.to_owned(), value.clone());
                }
            }
            Ok(Reply::new(all))
        }
        "Set" if signature == "ssv" => {
            let (iface, name, _value): (String, String, zbus::OwnedVariant) =
                body.deserialize().map_err(bad_args)?;
            let iface = find(&iface)?;
            if iface.property(&name).is_some() {
                Err(MethodError::new(
                    PROPERTY_READ_ONLY,
                    format!("Property '{name}' is read-only."),
                ))
            } else {
                Err(unknown_property(&name))
            }
        }
        "Get" | "GetAll" | "Set" => Err(MethodError::invalid_args(format!(
            "Invalid arguments '{signature}' to call {member}()."
        ))),
        _ => Err(MethodError::new(
            UNKNOWN_METHOD,
            format!("Unknown method '{member}' or interface '{PROPERTIES}'."),
        )),
    }
}

fn unknown_property(name: &str) -> MethodError {
    MethodError::new(UNKNOWN_PROPERTY, format!("Unknown property '{name}'."))
}

fn xml_args(out: &mut String, args: &[(&str, &str)], direction: Option<&str>) {
    for (name, sig) in args {
        match direction {
            Some(d) => out.push_str(&format!(
                "   <arg type=\"{sig}\" name=\"{name}\" direction=\"{d}\"/>\n"
            )),
            None => out.push_str(&format!("   <arg type=\"{sig}\" name=\"{name}\"/>\n")),
        }
    }
}

/// The introspection XML of an object with `ifaces` and child nodes `children`.
pub fn introspect(ifaces: &[&Interface], children: &[String]) -> String {
    let mut out = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n\
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    out.push_str(STANDARD_XML);
    for iface in ifaces {
        out.push_str(&format!(" <interface name=\"{}\">\n", iface.name));
        for m in iface.methods {
            out.push_str(&format!("  <method name=\"{}\">\n", m.name));
            xml_args(&mut out, m.inputs, Some("in"));
            xml_args(&mut out, m.outputs, Some("out"));
            out.push_str("  </method>\n");
        }
        for s in iface.signals {
            out.push_str(&format!("  <signal name=\"{}\">\n", s.name));
            xml_args(&mut out, s.args, None);
            out.push_str("  </signal>\n");
        }
        for p in iface.properties {
            out.push_str(&format!(
                "  <property name=\"{}\" type=\"{}\" access=\"read\"/>\n",
                p.name, p.signature
            ));
        }
        out.push_str(" </interface>\n");
    }
    for c in children {
        out.push_str(&format!(" <node name=\"{c}\"/>\n"));
    }
    out.push_str("</node>\n");
    out
}

const STANDARD_XML: &str = r#" <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg type="s" name="machine_uuid" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="xml_data" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="out" type="v"/>
  </method>
  <method name="GetAll">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="props" direction="out" type="a{sv}"/>
  </method>
  <method name="Set">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="in" type="v"/>
  </method>
  <signal name="PropertiesChanged">
   <arg type="s" name="interface_name"/>
   <arg type="a{sv}" name="changed_properties"/>
   <arg type="as" name="invalidated_properties"/>
  </signal>
 </interface>
"#;

/// Serves peer-to-peer clients accepted on `listener` (see [`bind_private`]) with `service`,
/// adding each to `signals`; what systemd serves on `/run/systemd/private` for root's
/// `systemctl`. Runs forever.
pub async fn serve_p2p<S: Service>(
    listener: tokio::net::UnixListener,
    service: Arc<S>,
    signals: Signals,
) {
    let guid = Guid::generate();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("accept on the private socket failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("cannot take over a p2p stream: {e}");
                continue;
            }
        };
        let service = Arc::clone(&service);
        let signals = signals.clone();
        let guid = guid.clone();
        tokio::spawn(async move {
            match zbus::connection::Builder::unix_stream(std_stream)
                .server(guid)
                .p2p()
                .build_message_stream()
                .await
            {
                Ok(stream) => {
                    signals.add(Connection::from(&stream));
                    serve(stream, service).await;
                }
                Err(e) => tracing::debug!("p2p client handshake failed: {e}"),
            }
        });
    }
}

/// Creates the listening socket for [`serve_p2p`] at `path` (replacing a stale one), mode
/// 0600: only root can connect, so the channel that skips the bus daemon is root's alone
/// (every call is still authorized by the peer's credentials). Must be called inside the
/// async runtime.
pub fn bind_private(path: &Path) -> Result<tokio::net::UnixListener, BusError> {
    let listen_err = |source| BusError::Listen {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_err(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(listen_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(listen_err)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{method, props};

    const IFACE: Interface = Interface {
        name: "org.example.Thing",
        methods: &[method!("Poke", [("how", "s")] => [("job", "o")])],
        properties: props![("Id", "s")],
        signals: &[crate::object::Signal {
            name: "Poked",
            args: &[("id", "u")],
        }],
    };

    #[test]
    fn introspection_lists_methods_signals_properties_and_children() {
        let xml = introspect(&[&IFACE], &["unit".to_owned()]);
        assert!(xml.contains("<interface name=\"org.example.Thing\">"));
        assert!(xml.contains("<arg type=\"s\" name=\"how\" direction=\"in\"/>"));
        assert!(xml.contains("<arg type=\"o\" name=\"job\" direction=\"out\"/>"));
        assert!(xml.contains("<signal name=\"Poked\">"));
        assert!(xml.contains("<property name=\"Id\" type=\"s\" access=\"read\"/>"));
        assert!(xml.contains("<node name=\"unit\"/>"));
        assert!(xml.contains("org.freedesktop.DBus.Properties"));
    }

    #[test]
    fn a_wrong_signature_is_invalid_args() {
        let m = IFACE.method("Poke").unwrap();
        assert!(check_signature(m, "s").is_ok());
        let e = check_signature(m, "u").unwrap_err();
        assert_eq!(e.name, crate::error::INVALID_ARGS);
        assert_eq!(
            e.message,
            "Invalid arguments 'u' to call Poke(), expecting 's'."
        );
    }
}
