import ConveyorCore

extension JobState {
    /// The state as a typed SQL constant, e.g. `'available'::conveyor_job_state`, generated from the enum.
    ///
    /// Statements splice this constant instead of binding the state as a text parameter: the planner can
    /// only match the partial claim index (`WHERE state = 'available'`) against a constant, and a bound
    /// text cast to the enum is not folded into one (measured: a 100-row claim took 15.7 ms instead of
    /// 2.5 ms on 20k jobs). Raw values are fixed lowercase identifiers, so splicing them is safe.
    var sql: String { "'\(rawValue)'::conveyor_job_state" }
}
