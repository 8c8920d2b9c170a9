pub struct Engine;
pub struct EngineConfig;
pub enum IoMode {}
