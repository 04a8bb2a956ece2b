"""Attribution methods: rules family (being written)."""
