//! Real hardware on a Linux device (feature `linux-device`): I2C sensors on `/dev/i2c-N` (linux-embedded-hal's
//! `I2cdev`), GPIO output lines through the GPIO character device (`CdevPin`), and PWM channels through sysfs
//! (`/sys/class/pwm/pwmchipN/pwmM`), each behind the embedded-hal trait the device loop takes.

use std::fs;
use std::path::{Path, PathBuf};

use embedded_hal::pwm::{ErrorKind, ErrorType, SetDutyCycle};
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
pub use linux_embedded_hal::{CdevPin, I2cdev};

use super::DeviceError;

fn hardware_error(what: &str, error: impl std::fmt::Display) -> DeviceError {
    DeviceError::Config {
        field: what.to_string(),
        message: error.to_string(),
    }
}

/// Opens an I2C bus, e.g. `/dev/i2c-1`.
pub fn open_i2c(path: &Path) -> Result<I2cdev, DeviceError> {
    I2cdev::new(path).map_err(|e| hardware_error(&path.display().to_string(), e))
}

/// Requests GPIO line `line` of `chip` (e.g. `/dev/gpiochip0`) as an output, initially low.
pub fn open_output_pin(chip: &Path, line: u32) -> Result<CdevPin, DeviceError> {
    let name = format!("{} line {line}", chip.display());
    let mut chip = Chip::new(chip).map_err(|e| hardware_error(&name, e))?;
    let handle = chip
        .get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, 0, "tern-edge"))
        .map_err(|e| hardware_error(&name, e))?;
    CdevPin::new(handle).map_err(|e| hardware_error(&name, e))
}

/// A sysfs PWM channel: exported, given `period_ns`, enabled; duty cycles are in nanoseconds of that period.
pub struct SysfsPwm {
    dir: PathBuf,
    period_ns: u32,
}

/// A sysfs write failed.
#[derive(Debug)]
pub struct SysfsPwmError(pub std::io::Error);

impl embedded_hal::pwm::Error for SysfsPwmError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl SysfsPwm {
    /// Exports channel `channel` of `chip` (e.g. `/sys/class/pwm/pwmchip0`) if needed and starts it at duty 0.
    pub fn open(chip: &Path, channel: u32, period_ns: u32) -> Result<SysfsPwm, DeviceError> {
        let dir = chip.join(format!("pwm{channel}"));
        let name = dir.display().to_string();
        if !dir.exists() {
            fs::write(chip.join("export"), channel.to_string())
                .map_err(|e| hardware_error(&name, e))?;
        }
        for (file, value) in [("duty_cycle", 0), ("period", period_ns), ("enable", 1)] {
            fs::write(dir.join(file), value.to_string()).map_err(|e| hardware_error(&name, e))?;
        }
        Ok(SysfsPwm { dir, period_ns })
    }
}

impl ErrorType for SysfsPwm {
    type Error = SysfsPwmError;
}

impl SetDutyCycle for SysfsPwm {
    fn max_duty_cycle(&self) -> u16 {
        u16::MAX
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), Self::Error> {
        let nanoseconds = (self.period_ns as u64 * duty as u64) / u16::MAX as u64;
        fs::write(self.dir.join("duty_cycle"), nanoseconds.to_string()).map_err(SysfsPwmError)
    }
}
