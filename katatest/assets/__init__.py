"""Guest assets: a Kata-style kernel, a busybox initrd and a DAX-capable rootfs image, built and cached."""
