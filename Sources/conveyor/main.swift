import ConveyorCLI

ConveyorCommand.bootstrapLogging()
await ConveyorCommand.start()
