# 指定消息队列的位置
# (The tutorial's RabbitMQ host is a machine on its author's LAN; this points at a local one.
#  run_demo.py overrides it with CELERIAC_BROKER_URL=sqlite:// to use the embedded broker.)
broker_url= 'amqp://guest:guest@127.0.0.1:5672'
