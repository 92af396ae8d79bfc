//! What the Vulkan implementation on this machine offers for dma-buf import/export.

use std::ffi::CStr;

use ash::vk;
use thiserror::Error;

/// Device extensions the render stage cannot work without.
pub const REQUIRED_EXTENSIONS: &[&CStr] = &[
    ash::khr::external_memory_fd::NAME,
    ash::ext::external_memory_dma_buf::NAME,
];

/// Device extensions used when offered.
pub const OPTIONAL_EXTENSIONS: &[&CStr] = &[
    ash::ext::image_drm_format_modifier::NAME,
    ash::ext::queue_family_foreign::NAME,
    ash::khr::external_semaphore_fd::NAME,
    ash::khr::external_fence_fd::NAME,
];

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("cannot load the Vulkan loader (libvulkan.so.1): {0}; install libvulkan1 and a Vulkan driver (e.g. mesa-vulkan-drivers)")]
    Loader(#[from] ash::LoadingError),
    #[error("vkCreateInstance failed: {0}")]
    Instance(vk::Result),
    #[error("vkEnumeratePhysicalDevices failed: {0}")]
    Enumerate(vk::Result),
}

/// One physical device and the dma-buf related extensions it offers.
#[derive(Debug, Clone)]
pub struct DeviceReport {
    pub name: String,
    pub driver_name: String,
    pub device_type: String,
    pub api_version: (u32, u32, u32),
    /// Extensions from [`REQUIRED_EXTENSIONS`] and [`OPTIONAL_EXTENSIONS`] the device offers.
    pub offered: Vec<String>,
    /// Extensions from [`REQUIRED_EXTENSIONS`] the device lacks (empty when the render stage can run).
    pub missing_required: Vec<String>,
    /// How a submission's completion can leave the driver as a Linux sync_file (SYNC_FD handle type).
    pub sync_fd: SyncFdSupport,
}

/// What the device says about SYNC_FD handles (`vkGetPhysicalDeviceExternalFenceProperties` and
/// `vkGetPhysicalDeviceExternalSemaphoreProperties` with `SYNC_FD`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncFdSupport {
    pub fence_export: bool,
    pub fence_import: bool,
    pub semaphore_export: bool,
    pub semaphore_import: bool,
}

/// Lists every Vulkan physical device with the extensions that matter to dmacam.
pub fn probe() -> Result<Vec<DeviceReport>, ProbeError> {
    // SAFETY: loading libvulkan runs its initialisers; the loader is the system's own and is kept alive by the
    // returned `Entry` for as long as any Vulkan object made from it.
    let entry = unsafe { ash::Entry::load()? };
    let app = vk::ApplicationInfo::default()
        .application_name(c"dmacam")
        .api_version(vk::API_VERSION_1_1);
    let info = vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: `info` and everything it points to live until the call returns.
    let instance = unsafe { entry.create_instance(&info, None) }.map_err(ProbeError::Instance)?;
    let result = report_devices(&instance);
    // SAFETY: no object created from this instance outlives this function.
    unsafe { instance.destroy_instance(None) };
    result
}

fn report_devices(instance: &ash::Instance) -> Result<Vec<DeviceReport>, ProbeError> {
    // SAFETY: `instance` is a live instance.
    let devices =
        unsafe { instance.enumerate_physical_devices() }.map_err(ProbeError::Enumerate)?;
    let mut out = Vec::with_capacity(devices.len());
    for pd in devices {
        let mut driver = vk::PhysicalDeviceDriverProperties::default();
        let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut driver);
        // SAFETY: `pd` came from this instance; the chained struct lives until the call returns.
        unsafe { instance.get_physical_device_properties2(pd, &mut props2) };
        let props = props2.properties;
        // SAFETY: `pd` came from this instance.
        let exts = unsafe { instance.enumerate_device_extension_properties(pd) }
            .map_err(ProbeError::Enumerate)?;
        let has = |want: &CStr| {
            exts.iter()
                .any(|e| e.extension_name_as_c_str().is_ok_and(|n| n == want))
        };
        let name_of = |c: &CStr| c.to_string_lossy().into_owned();
        let sync_fd = sync_fd_support(instance, pd);
        out.push(DeviceReport {
            name: props
                .device_name_as_c_str()
                .map(name_of)
                .unwrap_or_default(),
            driver_name: driver
                .driver_name_as_c_str()
                .map(name_of)
                .unwrap_or_default(),
            device_type: format!("{:?}", props.device_type),
            api_version: (
                vk::api_version_major(props.api_version),
                vk::api_version_minor(props.api_version),
                vk::api_version_patch(props.api_version),
            ),
            offered: REQUIRED_EXTENSIONS
                .iter()
                .chain(OPTIONAL_EXTENSIONS)
                .filter(|e| has(e))
                .map(|e| name_of(e))
                .collect(),
            missing_required: REQUIRED_EXTENSIONS
                .iter()
                .filter(|e| !has(e))
                .map(|e| name_of(e))
                .collect(),
            sync_fd,
        });
    }
    Ok(out)
}

/// Queries the device's SYNC_FD fence and semaphore capabilities (core in Vulkan 1.1).
pub(crate) fn sync_fd_support(instance: &ash::Instance, pd: vk::PhysicalDevice) -> SyncFdSupport {
    let fence_info = vk::PhysicalDeviceExternalFenceInfo::default()
        .handle_type(vk::ExternalFenceHandleTypeFlags::SYNC_FD);
    let mut fence = vk::ExternalFenceProperties::default();
    // SAFETY: `pd` came from this instance (created for Vulkan 1.1); both structs live until the call returns.
    unsafe { instance.get_physical_device_external_fence_properties(pd, &fence_info, &mut fence) };
    let sem_info = vk::PhysicalDeviceExternalSemaphoreInfo::default()
        .handle_type(vk::ExternalSemaphoreHandleTypeFlags::SYNC_FD);
    let mut sem = vk::ExternalSemaphoreProperties::default();
    // SAFETY: as above.
    unsafe { instance.get_physical_device_external_semaphore_properties(pd, &sem_info, &mut sem) };
    let f = fence.external_fence_features;
    let s = sem.external_semaphore_features;
    SyncFdSupport {
        fence_export: f.contains(vk::ExternalFenceFeatureFlags::EXPORTABLE),
        fence_import: f.contains(vk::ExternalFenceFeatureFlags::IMPORTABLE),
        semaphore_export: s.contains(vk::ExternalSemaphoreFeatureFlags::EXPORTABLE),
        semaphore_import: s.contains(vk::ExternalSemaphoreFeatureFlags::IMPORTABLE),
    }
}
