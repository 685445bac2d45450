//! D-Bus objects described as data: interfaces with their methods, properties and signals
//! (as systemd documents them), property sets, replies and the context of one call.
//!
//! The daemons do not use zbus' object server: systemd's clients ask
//! `org.freedesktop.DBus.Properties.GetAll` with an *empty* interface name (meaning "every
//! interface"), which the object server refuses, and the systemd1 bridge must answer for unit
//! paths it computes on demand. [`crate::server`] dispatches calls against these descriptions
//! instead.

use std::future::Future;
use std::pin::Pin;

use zbus::message::{self, Flags};
use zbus::wire::{DynamicType, Type, Variant};
use zbus::{Connection, Message};

use crate::auth::{self, Caller};
use crate::error::MethodError;

/// One argument of a method or signal: its name (for introspection) and D-Bus signature.
pub type Arg = (&'static str, &'static str);

/// A method: name, input arguments and output arguments.
#[derive(Debug)]
pub struct Method {
    /// The member name, exactly as systemd spells it.
    pub name: &'static str,
    /// Input arguments in order.
    pub inputs: &'static [Arg],
    /// Output arguments in order.
    pub outputs: &'static [Arg],
}

impl Method {
    /// The concatenated signature of the inputs (what a call's body must carry).
    pub fn input_signature(&self) -> String {
        self.inputs.iter().map(|(_, s)| *s).collect()
    }
}

/// A read-only property: name and D-Bus signature.
#[derive(Debug)]
pub struct Property {
    /// The property name.
    pub name: &'static str,
    /// Its D-Bus type.
    pub signature: &'static str,
}

/// A signal: name and arguments.
#[derive(Debug)]
pub struct Signal {
    /// The member name.
    pub name: &'static str,
    /// Arguments in order.
    pub args: &'static [Arg],
}

/// One D-Bus interface.
#[derive(Debug)]
pub struct Interface {
    /// The interface name, e.g. `org.freedesktop.hostname1`.
    pub name: &'static str,
    /// Methods.
    pub methods: &'static [Method],
    /// Properties (all read-only: changes go through methods, as in systemd).
    pub properties: &'static [Property],
    /// Signals.
    pub signals: &'static [Signal],
}

impl Interface {
    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&'static Method> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// The property called `name`.
    pub fn property(&self, name: &str) -> Option<&'static Property> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// Shorthand for a [`Method`] in a `const` table.
#[macro_export]
macro_rules! method {
    ($name:literal, [$(($a:literal, $as:literal)),* $(,)?] => [$(($o:literal, $os:literal)),* $(,)?]) => {
        $crate::object::Method {
            name: $name,
            inputs: &[$(($a, $as)),*],
            outputs: &[$(($o, $os)),*],
        }
    };
}

/// Shorthand for a list of [`Property`] in a `const` table: `props![("Id", "s"), …]`.
#[macro_export]
macro_rules! props {
    ($(($name:literal, $sig:literal)),* $(,)?) => {
        &[$($crate::object::Property { name: $name, signature: $sig }),*]
    };
}

/// The values of an interface's properties, in declaration order.
#[derive(Debug, Default)]
pub struct Props(Vec<(&'static str, Variant<'static>)>);

impl Props {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one property.
    pub fn add(&mut self, name: &'static str, value: impl Into<Variant<'static>>) -> &mut Self {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
        self
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Variant<'static>> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Names and values.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Variant<'static>)> {
        self.0.iter().map(|(n, v)| (*n, v))
    }

    /// Keeps only the properties whose names are in `names`.
    pub fn retain(&mut self, names: &[&str]) {
        self.0.retain(|(n, _)| names.contains(n));
    }

    /// Differences from the interface description: missing, undeclared or mistyped properties.
    /// Empty when the set is exactly what the interface declares (checked by unit tests, since
    /// systemd's clients reject a property of the wrong type).
    pub fn mismatches(&self, iface: &Interface) -> Vec<String> {
        let mut out = Vec::new();
        for p in iface.properties {
            match self.get(p.name) {
                None => out.push(format!("{}.{} missing", iface.name, p.name)),
                Some(v) => {
                    let got = v.value_signature().to_string();
                    if got != p.signature {
                        out.push(format!(
                            "{}.{} has type {got}, declared {}",
                            iface.name, p.name, p.signature
                        ));
                    }
                }
            }
        }
        for (n, _) in &self.0 {
            if iface.property(n).is_none() {
                out.push(format!("{}.{n} is not declared", iface.name));
            }
        }
        out
    }
}

/// A future that runs after a reply has been sent (e.g. a job that must not report completion
/// before its caller knows the job's path).
pub type AfterReply = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

type BuildFn = Box<dyn FnOnce(message::Builder<'static>) -> zbus::Result<Message> + Send>;

/// The successful answer to a method call: its body, and optionally work to do once it is sent.
pub struct Reply {
    build: BuildFn,
    after: Option<AfterReply>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("after", &self.after.is_some())
            .finish()
    }
}

impl Reply {
    /// A reply carrying `body` (a single value, or a tuple for several out arguments).
    pub fn new<B>(body: B) -> Self
    where
        B: serde::Serialize + DynamicType + Send + 'static,
    {
        Self {
            build: Box::new(move |b| b.build(&body)),
            after: None,
        }
    }

    /// A reply without out arguments.
    pub fn empty() -> Self {
        Self::new(())
    }

    /// Runs `fut` once the reply is on its way.
    pub fn then(mut self, fut: impl Future<Output = ()> + Send + 'static) -> Self {
        self.after = Some(Box::pin(fut));
        self
    }

    /// Builds the message and hands back the follow-up work.
    pub(crate) fn into_parts(
        self,
        builder: message::Builder<'static>,
    ) -> (zbus::Result<Message>, Option<AfterReply>) {
        ((self.build)(builder), self.after)
    }
}

/// One incoming method call.
#[derive(Debug, Clone)]
pub struct Call {
    conn: Connection,
    msg: Message,
    path: String,
}

impl Call {
    pub(crate) fn new(conn: Connection, msg: Message, path: String) -> Self {
        Self { conn, msg, path }
    }

    /// The object path called.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The connection the call came in on.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The raw message.
    pub fn message(&self) -> &Message {
        &self.msg
    }

    /// The caller's unique bus name (`None` on a peer-to-peer connection).
    pub fn sender(&self) -> Option<String> {
        self.msg.header().sender().map(|s| s.to_string())
    }

    /// Whether the caller is ready to wait for interactive authorization.
    pub fn allows_interaction(&self) -> bool {
        self.msg
            .primary_header()
            .flags()
            .contains(Flags::ALLOW_INTERACTIVE_AUTH)
    }

    /// The body decoded as `T` (a tuple for several arguments). The dispatcher has already
    /// checked the signature, so an error here means a wrongly declared method.
    pub fn args<T>(&self) -> Result<T, MethodError>
    where
        T: serde::de::DeserializeOwned + Type,
    {
        self.msg
            .body()
            .deserialize::<T>()
            .map_err(|e| MethodError::invalid_args(format!("Cannot decode arguments: {e}")))
    }

    /// Who is calling: uid and pid, from the bus or from the socket's credentials.
    pub async fn caller(&self) -> Result<Caller, MethodError> {
        auth::caller(&self.conn, &self.msg).await.map_err(|e| {
            tracing::warn!("cannot identify a caller: {e}");
            MethodError::access_denied("Cannot identify the caller.")
        })
    }

    /// Succeeds only when the caller is root; `action` completes "Only root may …".
    pub async fn require_root(&self, action: &str) -> Result<(), MethodError> {
        let caller = self.caller().await?;
        auth::require_root(&caller, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IFACE: Interface = Interface {
        name: "org.example.Test",
        methods: &[method!("Frob", [("name", "s"), ("flag", "b")] => [("job", "o")])],
        properties: props![("Id", "s"), ("Pids", "au")],
        signals: &[],
    };

    #[test]
    fn input_signature_concatenates_arguments() {
        assert_eq!(IFACE.method("Frob").unwrap().input_signature(), "sb");
        assert!(IFACE.method("frob").is_none());
    }

    #[test]
    fn mismatches_report_missing_mistyped_and_undeclared_properties() {
        let mut p = Props::new();
        p.add("Id", 3u32).add("Extra", "x");
        let m = p.mismatches(&IFACE);
        assert_eq!(
            m,
            [
                "org.example.Test.Id has type u, declared s",
                "org.example.Test.Pids missing",
                "org.example.Test.Extra is not declared",
            ]
        );
        let mut ok = Props::new();
        ok.add("Id", "a").add("Pids", vec![1u32, 2]);
        assert!(ok.mismatches(&IFACE).is_empty());
    }

    #[test]
    fn adding_a_property_twice_replaces_it() {
        let mut p = Props::new();
        p.add("Id", "a").add("Id", "b");
        assert_eq!(p.iter().count(), 1);
        assert_eq!(p.get("Id"), Some(&Variant::from("b")));
    }
}
