"""Attribution methods: cam family (being written)."""
