"""Attribution methods: perturbation family (being written)."""
