"""Searching pass parameters: the search space, samplers, execution orders, executors and the search loop."""
