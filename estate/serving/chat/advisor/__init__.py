"""The investment advisor behind the ``chat`` function: parser, tools, engines, guards."""
