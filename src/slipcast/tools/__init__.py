"""Developer tools: the demo, the service as a child process, requests as a dashboard sends them,
``slipcast doctor`` and the API reference writer."""
