package sysproxy

// Default is this system's proxy setting: WinINet's.
func Default() System { return WinINet{} }
