use std::path::{Path, PathBuf};

use edgesort_capture::list_jpegs;
use edgesort_types::{BoundingBox, ClassId};

use crate::EvalError;

/// One labelled object, normalised to the image (0..1), centre and size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Object {
    /// Its class.
    pub class: ClassId,
    /// Centre x.
    pub cx: f32,
    /// Centre y.
    pub cy: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

impl Object {
    /// Its box in the pixels of a `width x height` image.
    pub fn bbox(&self, width: f32, height: f32) -> BoundingBox {
        BoundingBox {
            x1: (self.cx - self.width / 2.0) * width,
            y1: (self.cy - self.height / 2.0) * height,
            x2: (self.cx + self.width / 2.0) * width,
            y2: (self.cy + self.height / 2.0) * height,
        }
    }
}

/// An image and what is in it.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledImage {
    /// The image file.
    pub image: PathBuf,
    /// Its objects; empty for a background image.
    pub objects: Vec<Object>,
}

/// A YOLO-format dataset: `images/NAME.jpg` with `labels/NAME.txt`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The dataset folder.
    pub root: PathBuf,
    /// Images in name order.
    pub images: Vec<LabelledImage>,
}

impl Dataset {
    /// Reads the image list and every label file of `root`, checking that each
    /// label names one of `classes` classes.
    pub fn open(root: &Path, classes: usize) -> Result<Self, EvalError> {
        let images_dir = root.join("images");
        let paths = list_jpegs(&images_dir).map_err(|source| EvalError::ListImages {
            path: images_dir.clone(),
            source,
        })?;
        let images = paths
            .into_iter()
            .map(|image| {
                let stem = image.file_stem().unwrap_or_default();
                let label_path = root.join("labels").join(stem).with_extension("txt");
                let objects = match std::fs::read_to_string(&label_path) {
                    Ok(text) => parse_labels(&label_path, &text, classes)?,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(source) => {
                        return Err(EvalError::ReadLabels {
                            path: label_path,
                            source,
                        });
                    }
                };
                Ok(LabelledImage { image, objects })
            })
            .collect::<Result<_, _>>()?;
        Ok(Dataset {
            root: root.to_owned(),
            images,
        })
    }

    /// Number of labelled objects over all images.
    pub fn objects(&self) -> usize {
        self.images.iter().map(|image| image.objects.len()).sum()
    }
}

fn parse_labels(path: &Path, text: &str, classes: usize) -> Result<Vec<Object>, EvalError> {
    let mut objects = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let error = |reason: String| EvalError::ParseLabel {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        if fields.len() != 5 {
            return Err(error(format!(
                "expected `class cx cy w h`, found {} fields",
                fields.len()
            )));
        }
        let class: usize = fields[0]
            .parse()
            .map_err(|_| error(format!("class {:?} is not a class index", fields[0])))?;
        if class >= classes {
            return Err(error(format!(
                "class {class} is out of range: the model has {classes} classes"
            )));
        }
        let mut numbers = [0.0f32; 4];
        for (number, field) in numbers.iter_mut().zip(&fields[1..]) {
            *number = field
                .parse()
                .ok()
                .filter(|value: &f32| value.is_finite())
                .ok_or_else(|| error(format!("{field:?} is not a number")))?;
        }
        let [cx, cy, width, height] = numbers;
        if width <= 0.0 || height <= 0.0 {
            return Err(error(format!(
                "box size {width} x {height} is not positive"
            )));
        }
        objects.push(Object {
            class: ClassId(class as u16),
            cx,
            cy,
            width,
            height,
        });
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_bad_lines_are_named() {
        let path = Path::new("labels/a.txt");
        let objects = parse_labels(path, "1 0.5 0.5 0.2 0.1\n\n4 0.1 0.2 0.3 0.4\n", 5).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].class, ClassId(4));
        for (text, reason) in [
            ("5 0.5 0.5 0.2 0.1", "class 5 is out of range"),
            ("0 0.5 0.5 0.2", "found 4 fields"),
            ("x 0.5 0.5 0.2 0.1", "not a class index"),
            ("0 0.5 nan 0.2 0.1", "\"nan\" is not a number"),
            ("0 0.5 0.5 0 0.1", "not positive"),
        ] {
            let message = parse_labels(path, &format!("0 0.1 0.1 0.1 0.1\n{text}"), 5)
                .unwrap_err()
                .to_string();
            assert!(message.starts_with("labels/a.txt:2: "), "{message}");
            assert!(message.contains(reason), "{message}");
        }
    }
}
