"""Common kit of the VươnMình services: settings, event contracts, outbox, inbox, log transports."""
