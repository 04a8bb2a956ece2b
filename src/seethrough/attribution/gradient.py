"""Attribution methods: gradient family (being written)."""
