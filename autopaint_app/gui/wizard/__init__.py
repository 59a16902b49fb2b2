"""The training wizard (issue 6): train, validate and install an inpainting model from the app."""

from autopaint_app.gui.wizard.wizard import TrainingWizard, user_models_folder

__all__ = ["TrainingWizard", "user_models_folder"]
