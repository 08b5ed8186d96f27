"""The gateway: the request pipeline, routing to nodes, and the gateway's gRPC services."""
