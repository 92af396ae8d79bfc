//! The properties of a KMS object by name, as read from the card and used to build commits.

use std::collections::HashMap;

use drm::control::property;

/// An enum property's entries: (name, raw value).
pub(crate) type Entries = Vec<(String, u64)>;

/// The properties of one KMS object by name: handle, value at read time and description.
#[derive(Debug, Default, Clone)]
pub(crate) struct Props {
    map: HashMap<String, (property::Handle, u64, property::Info)>,
}

impl Props {
    pub(crate) fn insert(
        &mut self,
        name: String,
        handle: property::Handle,
        value: u64,
        info: property::Info,
    ) {
        self.map.insert(name, (handle, value, info));
    }

    pub(crate) fn handle(&self, name: &str) -> Option<property::Handle> {
        self.map.get(name).map(|e| e.0)
    }

    pub(crate) fn value(&self, name: &str) -> Option<u64> {
        self.map.get(name).map(|e| e.1)
    }

    /// The name of an enum property's current value (e.g. a plane's `type`).
    pub(crate) fn enum_name(&self, name: &str) -> Option<String> {
        let (_, value, info) = self.map.get(name)?;
        match info.value_type() {
            property::ValueType::Enum(values) => values
                .get_value_from_raw_value(*value)
                .map(|e| e.name().to_string_lossy().into_owned()),
            _ => None,
        }
    }

    /// The (name, raw value) entries of an enum property, `None` if the object lacks it or it is no enum.
    pub(crate) fn enum_values(&self, name: &str) -> Option<Entries> {
        let (_, _, info) = self.map.get(name)?;
        match info.value_type() {
            property::ValueType::Enum(values) => {
                let (raw, entries) = values.values();
                Some(
                    entries
                        .iter()
                        .zip(raw)
                        .map(|(e, &v)| (e.name().to_string_lossy().into_owned(), v))
                        .collect(),
                )
            }
            _ => None,
        }
    }
}
