//! Vulkan's own messages (the loader's, and the validation layer's when it is loaded, e.g. with
//! `VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation`) routed to `tracing` through a VK_EXT_debug_utils
//! messenger, under the target `vulkan`: errors as errors, warnings as warnings, the rest at debug/trace.
//! Every validation error or warning is also counted ([`validation_messages`]), so a run can say how many
//! it had.

use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};

use ash::vk;

static VALIDATION_MESSAGES: AtomicU64 = AtomicU64::new(0);

/// How many validation errors and warnings this process's Vulkan instances reported so far.
pub fn validation_messages() -> u64 {
    VALIDATION_MESSAGES.load(Ordering::Relaxed)
}

/// A live messenger; destroyed before its instance ([`Messenger::destroy`]).
pub(crate) struct Messenger {
    loader: ash::ext::debug_utils::Instance,
    handle: vk::DebugUtilsMessengerEXT,
}

/// Whether the instance offers VK_EXT_debug_utils (the loader or a layer that is on).
pub(crate) fn offered(entry: &ash::Entry) -> bool {
    // SAFETY: a plain query with no layer named; the returned properties are owned.
    let exts = unsafe { entry.enumerate_instance_extension_properties(None) };
    exts.is_ok_and(|exts| {
        exts.iter().any(|e| {
            e.extension_name_as_c_str()
                .is_ok_and(|n| n == ash::ext::debug_utils::NAME)
        })
    })
}

impl Messenger {
    /// Installs the messenger on an instance made with VK_EXT_debug_utils enabled. A failure is logged and
    /// the instance is used without one.
    pub(crate) fn new(entry: &ash::Entry, instance: &ash::Instance) -> Option<Messenger> {
        let loader = ash::ext::debug_utils::Instance::new(entry, instance);
        let info = vk::DebugUtilsMessengerCreateInfoEXT::default()
            .message_severity(
                vk::DebugUtilsMessageSeverityFlagsEXT::ERROR
                    | vk::DebugUtilsMessageSeverityFlagsEXT::WARNING
                    | vk::DebugUtilsMessageSeverityFlagsEXT::INFO
                    | vk::DebugUtilsMessageSeverityFlagsEXT::VERBOSE,
            )
            .message_type(
                vk::DebugUtilsMessageTypeFlagsEXT::GENERAL
                    | vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION
                    | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE,
            )
            .pfn_user_callback(Some(callback));
        // SAFETY: the instance was created with VK_EXT_debug_utils enabled; `info` lives until the call returns
        // and its callback is a plain function that outlives the messenger.
        match unsafe { loader.create_debug_utils_messenger(&info, None) } {
            Ok(handle) => Some(Messenger { loader, handle }),
            Err(e) => {
                tracing::warn!(target: "vulkan", "vkCreateDebugUtilsMessengerEXT: {e}; Vulkan's messages are not logged");
                None
            }
        }
    }

    /// Destroys the messenger; call before destroying its instance.
    pub(crate) fn destroy(self) {
        // SAFETY: the handle came from this loader's instance, which is still alive, and is destroyed once.
        unsafe { self.loader.destroy_debug_utils_messenger(self.handle, None) };
    }
}

/// The messenger's callback: one `tracing` event per message.
unsafe extern "system" fn callback(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    kind: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    _user: *mut c_void,
) -> vk::Bool32 {
    // SAFETY: Vulkan passes a valid callback-data struct (or null) for the duration of the call; its strings
    // are NUL-terminated or null.
    let (id, message) = unsafe {
        let text = |p: *const std::ffi::c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        match data.as_ref() {
            Some(d) => (text(d.p_message_id_name), text(d.p_message)),
            None => (String::new(), String::new()),
        }
    };
    let validation = kind.contains(vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION);
    let kind = if validation {
        "validation"
    } else if kind.contains(vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE) {
        "performance"
    } else {
        "general"
    };
    if severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR) {
        if validation {
            VALIDATION_MESSAGES.fetch_add(1, Ordering::Relaxed);
        }
        tracing::error!(target: "vulkan", "Vulkan {kind} message {id}: {message}");
    } else if severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::WARNING) {
        if validation {
            VALIDATION_MESSAGES.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(target: "vulkan", "Vulkan {kind} message {id}: {message}");
    } else if severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::INFO) {
        tracing::debug!(target: "vulkan", "Vulkan {kind} message {id}: {message}");
    } else {
        tracing::trace!(target: "vulkan", "Vulkan {kind} message {id}: {message}");
    }
    // The call that caused the message goes on.
    vk::FALSE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A validation error or warning reaching the callback is counted; other messages are not.
    #[test]
    fn validation_errors_and_warnings_are_counted() {
        let text = c"vkCmdPipelineBarrier: oldLayout does not match";
        let id = c"VUID-test";
        let data = vk::DebugUtilsMessengerCallbackDataEXT::default()
            .message(text)
            .message_id_name(id);
        let before = validation_messages();
        let call = |severity, kind| {
            // SAFETY: `data` and its strings live for the call, as Vulkan guarantees for a real message.
            unsafe { callback(severity, kind, &data, std::ptr::null_mut()) }
        };
        let validation = vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION;
        assert_eq!(
            call(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR, validation),
            vk::FALSE
        );
        call(vk::DebugUtilsMessageSeverityFlagsEXT::WARNING, validation);
        call(vk::DebugUtilsMessageSeverityFlagsEXT::INFO, validation);
        call(
            vk::DebugUtilsMessageSeverityFlagsEXT::ERROR,
            vk::DebugUtilsMessageTypeFlagsEXT::GENERAL,
        );
        // SAFETY: a null callback-data pointer is tolerated.
        unsafe {
            callback(
                vk::DebugUtilsMessageSeverityFlagsEXT::VERBOSE,
                validation,
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(validation_messages() - before, 2);
    }
}
