// `import Conveyor` is all a producer needs: the job description (`NewJob`, `Envelope`), the Redis
// settings (`RedisConfiguration`) and the store (`PostgresJobStore`, `Migrator`) come with it.
@_exported public import ConveyorCore
@_exported public import ConveyorPostgres
@_exported public import ConveyorRedis
