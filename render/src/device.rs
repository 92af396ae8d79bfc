//! Typed Vulkan objects: the instance + device with the capabilities the render stage found, and memory
//! helpers. Everything that owns a Vulkan handle keeps an `Arc<Gpu>`, so the device outlives it.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use ash::vk;

use crate::{RenderError, REQUIRED_EXTENSIONS};

/// What the chosen device offers beyond core Vulkan.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    /// VK_KHR_external_memory_fd + VK_EXT_external_memory_dma_buf enabled.
    pub dmabuf: bool,
    /// VK_EXT_image_drm_format_modifier enabled.
    pub drm_modifier: bool,
    /// VK_EXT_queue_family_foreign enabled.
    pub queue_family_foreign: bool,
    pub external_fence_fd: bool,
    pub external_semaphore_fd: bool,
    /// A fence's completion can be exported as a sync_file (`SYNC_FD`): frames in flight complete through it.
    pub sync_file_fence: bool,
}

pub(crate) struct Gpu {
    _entry: ash::Entry,
    pub instance: ash::Instance,
    pub pd: vk::PhysicalDevice,
    pub device: ash::Device,
    pub queue: vk::Queue,
    pub family: u32,
    pub mem: vk::PhysicalDeviceMemoryProperties,
    pub ext_fd: Option<ash::khr::external_memory_fd::Device>,
    pub drm_mod: Option<ash::ext::image_drm_format_modifier::Device>,
    /// VK_KHR_external_fence_fd, when its fences export as sync_files ([`Caps::sync_file_fence`]).
    pub fence_fd: Option<ash::khr::external_fence_fd::Device>,
    pub caps: Caps,
    pub name: String,
    pub driver: String,
    /// Routes Vulkan's messages to `tracing` (VK_EXT_debug_utils, where offered).
    messenger: Option<crate::debug::Messenger>,
}

pub(crate) fn vkerr(what: &'static str) -> impl FnOnce(vk::Result) -> RenderError {
    move |source| RenderError::Vk { what, source }
}

impl Gpu {
    /// Creates the instance and a device with one compute queue. With `need_dmabuf`, the first device offering
    /// [`REQUIRED_EXTENSIONS`] is chosen and their absence is an error naming them.
    pub fn new(need_dmabuf: bool) -> Result<Arc<Gpu>, RenderError> {
        // SAFETY: loading libvulkan runs its initialisers; the `Entry` is kept in `Gpu` for as long as any
        // Vulkan object made from it.
        let entry = unsafe { ash::Entry::load()? };
        let app = vk::ApplicationInfo::default()
            .application_name(c"dmacam")
            .api_version(vk::API_VERSION_1_2);
        // VK_EXT_debug_utils where offered, so that Vulkan's own messages (the validation layer's among them)
        // reach the log.
        let debug = crate::debug::offered(&entry);
        let ext_names = [ash::ext::debug_utils::NAME.as_ptr()];
        let mut info = vk::InstanceCreateInfo::default().application_info(&app);
        if debug {
            info = info.enabled_extension_names(&ext_names);
        }
        // SAFETY: `info` and what it points to live until the call returns; the extension named was offered.
        let instance =
            unsafe { entry.create_instance(&info, None) }.map_err(vkerr("vkCreateInstance"))?;
        let messenger = debug
            .then(|| crate::debug::Messenger::new(&entry, &instance))
            .flatten();
        match Self::with_instance(entry.clone(), &instance, need_dmabuf) {
            Ok(mut gpu) => {
                gpu.messenger = messenger;
                Ok(Arc::new(gpu))
            }
            Err(e) => {
                if let Some(m) = messenger {
                    m.destroy();
                }
                // SAFETY: nothing created from the instance survives the failed set-up.
                unsafe { instance.destroy_instance(None) };
                Err(e)
            }
        }
    }

    fn with_instance(
        entry: ash::Entry,
        instance: &ash::Instance,
        need_dmabuf: bool,
    ) -> Result<Gpu, RenderError> {
        // SAFETY: `instance` is live.
        let pds = unsafe { instance.enumerate_physical_devices() }
            .map_err(vkerr("vkEnumeratePhysicalDevices"))?;
        if pds.is_empty() {
            return Err(RenderError::NoDevice);
        }
        let mut first_missing = None;
        for pd in pds {
            // SAFETY: `pd` came from this instance.
            let exts = unsafe { instance.enumerate_device_extension_properties(pd) }
                .map_err(vkerr("vkEnumerateDeviceExtensionProperties"))?;
            let has = |want: &CStr| {
                exts.iter()
                    .any(|e| e.extension_name_as_c_str().is_ok_and(|n| n == want))
            };
            let mut driver = vk::PhysicalDeviceDriverProperties::default();
            let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut driver);
            // SAFETY: `pd` came from this instance; the chained struct lives until the call returns.
            unsafe { instance.get_physical_device_properties2(pd, &mut props2) };
            let props = props2.properties;
            let name = props
                .device_name_as_c_str()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default();
            let driver_name = driver
                .driver_name_as_c_str()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (major, minor) = (
                vk::api_version_major(props.api_version),
                vk::api_version_minor(props.api_version),
            );
            if (major, minor) < (1, 1) {
                first_missing.get_or_insert(RenderError::TooOld {
                    device: name,
                    major,
                    minor,
                });
                continue;
            }
            let missing: Vec<String> = REQUIRED_EXTENSIONS
                .iter()
                .filter(|e| !has(e))
                .map(|e| e.to_string_lossy().into_owned())
                .collect();
            if need_dmabuf && !missing.is_empty() {
                first_missing.get_or_insert(RenderError::MissingExtensions {
                    device: name,
                    missing: missing.join(" and "),
                    why: "import camera dma-bufs as Vulkan memory",
                });
                continue;
            }
            let mut caps = Caps {
                dmabuf: missing.is_empty(),
                ..Caps::default()
            };
            let mut enable: Vec<&CStr> = vec![];
            if caps.dmabuf {
                enable.extend(REQUIRED_EXTENSIONS);
                // The modifier extension needs VK_KHR_image_format_list (core in 1.2).
                if has(ash::ext::image_drm_format_modifier::NAME)
                    && ((major, minor) >= (1, 2) || has(ash::khr::image_format_list::NAME))
                {
                    enable.push(ash::ext::image_drm_format_modifier::NAME);
                    if (major, minor) < (1, 2) {
                        enable.push(ash::khr::image_format_list::NAME);
                    }
                    caps.drm_modifier = true;
                }
                if has(ash::ext::queue_family_foreign::NAME) {
                    enable.push(ash::ext::queue_family_foreign::NAME);
                    caps.queue_family_foreign = true;
                }
            }
            if has(ash::khr::external_fence_fd::NAME) {
                enable.push(ash::khr::external_fence_fd::NAME);
                caps.external_fence_fd = true;
                caps.sync_file_fence = crate::probe::sync_fd_support(instance, pd).fence_export;
            }
            if has(ash::khr::external_semaphore_fd::NAME) {
                enable.push(ash::khr::external_semaphore_fd::NAME);
                caps.external_semaphore_fd = true;
            }
            // SAFETY: `pd` came from this instance.
            let families = unsafe { instance.get_physical_device_queue_family_properties(pd) };
            let Some(family) = families
                .iter()
                .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
            else {
                continue;
            };
            let family = family as u32;
            let prio = [1.0f32];
            let qinfo = [vk::DeviceQueueCreateInfo::default()
                .queue_family_index(family)
                .queue_priorities(&prio)];
            let names: Vec<CString> = enable.iter().map(|c| (*c).to_owned()).collect();
            let ptrs: Vec<*const std::ffi::c_char> = names.iter().map(|c| c.as_ptr()).collect();
            let dinfo = vk::DeviceCreateInfo::default()
                .queue_create_infos(&qinfo)
                .enabled_extension_names(&ptrs);
            // SAFETY: `dinfo` and everything it points to (`qinfo`, `prio`, `names`) live until the call returns;
            // every extension enabled was offered by `pd`.
            let device = unsafe { instance.create_device(pd, &dinfo, None) }
                .map_err(vkerr("vkCreateDevice"))?;
            // SAFETY: queue 0 of `family` was requested above.
            let queue = unsafe { device.get_device_queue(family, 0) };
            // SAFETY: `pd` came from this instance.
            let mem = unsafe { instance.get_physical_device_memory_properties(pd) };
            let ext_fd = caps
                .dmabuf
                .then(|| ash::khr::external_memory_fd::Device::new(instance, &device));
            let drm_mod = caps
                .drm_modifier
                .then(|| ash::ext::image_drm_format_modifier::Device::new(instance, &device));
            let fence_fd = caps
                .sync_file_fence
                .then(|| ash::khr::external_fence_fd::Device::new(instance, &device));
            tracing::info!(device = %name, driver = %driver_name, ?caps, "Vulkan device ready");
            return Ok(Gpu {
                _entry: entry,
                instance: instance.clone(),
                pd,
                device,
                queue,
                family,
                mem,
                ext_fd,
                drm_mod,
                fence_fd,
                caps,
                name,
                driver: driver_name,
                messenger: None,
            });
        }
        Err(first_missing.unwrap_or(RenderError::NoDevice))
    }

    /// Index of a memory type allowed by `bits`, preferring one with all of `want`.
    pub fn memory_type(&self, bits: u32, want: vk::MemoryPropertyFlags) -> Option<u32> {
        let types = &self.mem.memory_types[..self.mem.memory_type_count as usize];
        let allowed = |i: usize| bits & (1 << i) != 0;
        (0..types.len())
            .find(|&i| allowed(i) && types[i].property_flags.contains(want))
            .or_else(|| (0..types.len()).find(|&i| allowed(i)))
            .map(|i| i as u32)
    }

    pub fn is_host_visible(&self, index: u32) -> bool {
        self.mem.memory_types[index as usize]
            .property_flags
            .contains(
                vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT,
            )
    }

    /// The queue family that owns external memory between our uses of it.
    pub fn external_family(&self) -> u32 {
        if self.caps.queue_family_foreign {
            vk::QUEUE_FAMILY_FOREIGN_EXT
        } else {
            vk::QUEUE_FAMILY_EXTERNAL
        }
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: every object created from the device holds an `Arc<Gpu>`, so none is alive any more; waiting
        // for idle first makes sure no submitted work still uses them.
        unsafe {
            if let Err(e) = self.device.device_wait_idle() {
                tracing::warn!("vkDeviceWaitIdle before destroying the device: {e}");
            }
            self.device.destroy_device(None);
        }
        if let Some(m) = self.messenger.take() {
            m.destroy();
        }
        // SAFETY: the device and the messenger made from the instance are gone.
        unsafe {
            self.instance.destroy_instance(None);
        }
    }
}
